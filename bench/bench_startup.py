"""Start-up time of `autoresearch --help`, `autoresearch status` and `autoresearch show`, and proof that
the runner's process never imports torch.

Targets (issues 20 and 24): `--help` and `status` at most 0.1 s, `show` on a run of 1,000 experiments
at most 0.3 s. Also `status` and `report` on runs of 100 and 1,000 experiments (issue 26: status
reads the run's index, autoresearch/runindex.py, rather than replaying the ledger). Timed as a user runs them: whole processes, with Python's compiled bytecode and the
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


def timed(cmd: list[str], cwd: Path, env: dict[str, str], before=None) -> dict[str, float]:
    """Median and min of the wall and the CPU time of `cmd`, in ms, over RUNS runs after a warm-up
    (`before`, if given, is called before each run, untimed)."""
    subprocess.run(cmd, cwd=cwd, capture_output=True, env=env, check=True)  # warm: bytecode, the record
    wall, cpu = [], []
    for _ in range(RUNS):
        if before is not None:
            before()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, (cmd, proc.returncode)
        cpu.append(usage.ru_utime + usage.ru_stime)
    return {"wall_med": statistics.median(wall) * 1000, "wall_min": min(wall) * 1000,
            "cpu_med": statistics.median(cpu) * 1000, "cpu_min": min(cpu) * 1000}


def line(name: str, t: dict[str, float], target: int | None) -> str:
    return (f"  {name:<22} wall median {t['wall_med']:4.0f} ms (min {t['wall_min']:4.0f}), "
            f"CPU median {t['cpu_med']:4.0f} ms (min {t['cpu_min']:4.0f})"
            + (f"   target <= {target} ms" if target else ""))


def main() -> dict[str, float]:
    exe = Path(sys.executable).with_name("autoresearch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "autoresearch"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    floor = timed([sys.executable, "-c", "pass"], ROOT, env)
    project = scratch_project(5)
    big = scratch_project(0)
    mid = scratch_project(0)
    try:
        help_ = timed([*cmd, "--help"], project, env)  # a project without a conftest.py (which loads the plugins)
        subprocess.run([*cmd, "run", "--tag", "bench", "-q"], cwd=project, capture_output=True, check=True, env=env)
        status = timed([*cmd, "status"], project, env)
        write_run(big, 1000)
        show = timed([*cmd, "show"], big, env)
        records = by_size(cmd, env, {100: mid, 1000: big}, write=mid)
    finally:
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(big, ignore_errors=True)
        shutil.rmtree(mid, ignore_errors=True)
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
    for (command, n, how), t in records.items():
        print(line(f"{command} ({n}, {how})", t, 100 if (command, how) == ("status", "index") else None))
    print(f"  collecting experiments/: {verdict[0] if verdict else '?'}, {len(torch_lines)} torch modules "
          "in -X importtime")
    figures = {f"{c}_{n}_{how}_ms": t["wall_med"] for (c, n, how), t in records.items()}
    return {**figures, "help_ms": help_["wall_med"], "help_cpu_ms": help_["cpu_med"], "status_ms": status["wall_med"],
            "status_cpu_ms": status["cpu_med"], "show_ms": show["wall_med"], "show_cpu_ms": show["cpu_med"],
            "torch_modules": len(torch_lines)}


def by_size(cmd: list[str], env: dict[str, str], projects: dict[int, Path], write: Path) -> dict:
    """`status` and `report` on runs of 100 and 1,000 experiments (bench_show.write_run): `status`
    and `report` read from the run's index (kept by the warm-up, as a second call finds it), and
    replaying the ledger (the indexes removed before each run, as after any change to the run)."""
    write_run(write, 100)
    out = {}
    for n, root in projects.items():
        run = root / ".autoresearch" / "runs" / "big"
        for command in ("status", "report"):
            index = run / f"index-{command}.json"
            out[command, n, "index"] = timed([*cmd, command], root, env)
            out[command, n, "replay"] = timed([*cmd, command], root, env, before=lambda: index.unlink(missing_ok=True))
    return out


if __name__ == "__main__":
    RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    main()
