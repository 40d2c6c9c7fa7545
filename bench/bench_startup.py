"""Start-up time of `autoresearch --help`, `autoresearch status` and `autoresearch show`, and proof that
the runner's process never imports torch.

Targets (issues 20 and 24): `--help` and `status` at most 0.1 s, `show` on a run of 1,000 experiments
at most 0.3 s. Timed as a user runs them: whole processes, with Python's compiled bytecode and the
start-up record (autoresearch/startup.py) kept (PYTHONDONTWRITEBYTECODE unset, one warm-up run
first), RUNS runs each. Each prints its wall time and its CPU time (user + system of the child,
from os.wait4): the machine is shared, and load inflates the wall time much more than the CPU
time, which on an idle machine is close to the wall time. `status` reads a finished run of 5
experiments and collects its 5 hypothesis files; `show` a run of 1,000 (bench_show.write_run).
The torch check runs the CLI in one process and then inspects sys.modules.

    .venv/bin/python bench/bench_startup.py [RUNS]
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_show import write_run
from common import scratch_project

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Median and min of the wall and the CPU time of `cmd`, in ms, over RUNS runs after a warm-up."""
    subprocess.run(cmd, cwd=cwd, capture_output=True, env=env, check=True)  # warm: bytecode, the record
    wall, cpu = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, (cmd, proc.returncode)
        cpu.append(usage.ru_utime + usage.ru_stime)
    return {"wall_med": statistics.median(wall) * 1000, "wall_min": min(wall) * 1000,
            "cpu_med": statistics.median(cpu) * 1000, "cpu_min": min(cpu) * 1000}


def line(name: str, t: dict[str, float], target: int) -> str:
    return (f"  {name:<22} wall median {t['wall_med']:4.0f} ms (min {t['wall_min']:4.0f}), "
            f"CPU median {t['cpu_med']:4.0f} ms (min {t['cpu_min']:4.0f})   target <= {target} ms")


def main() -> dict[str, float]:
    exe = Path(sys.executable).with_name("autoresearch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "autoresearch"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    floor = timed([sys.executable, "-c", "pass"], ROOT, env)
    project = scratch_project(5)
    big = scratch_project(0)
    try:
        help_ = timed([*cmd, "--help"], project, env)  # a project without a conftest.py (which loads the plugins)
        subprocess.run([*cmd, "run", "--tag", "bench", "-q"], cwd=project, capture_output=True, check=True, env=env)
        status = timed([*cmd, "status"], project, env)
        write_run(big, 1000)
        show = timed([*cmd, "show"], big, env)
    finally:
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(big, ignore_errors=True)
    probe = ("import sys; from autoresearch.cli import main; main(['run', '--collect-only', 'experiments/']); "
             "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], cwd=ROOT, capture_output=True, text=True)
    torch_lines = [x for x in r.stderr.splitlines() if "| torch" in x or x.endswith(" torch")]
    verdict = [x for x in r.stderr.splitlines() if x.startswith("torch imported:")]
    print(f"startup over {RUNS} runs each (load average {os.getloadavg()[0]:.1f}):")
    print(line("python -c pass", floor, 0).rsplit("   target", 1)[0] + "   (the interpreter alone)")
    print(line("autoresearch --help", help_, 100))
    print(line("autoresearch status", status, 100))
    print(line("autoresearch show (1k)", show, 300))
    print(f"  collecting experiments/: {verdict[0] if verdict else '?'}, {len(torch_lines)} torch modules "
          "in -X importtime")
    return {"help_ms": help_["wall_med"], "help_cpu_ms": help_["cpu_med"], "status_ms": status["wall_med"],
            "status_cpu_ms": status["cpu_med"], "show_ms": show["wall_med"], "show_cpu_ms": show["cpu_med"],
            "torch_modules": len(torch_lines)}


if __name__ == "__main__":
    RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    main()
