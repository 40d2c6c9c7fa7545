"""Start-up time of `autoresearch --help` and `autoresearch status`, and proof that the runner's
process never imports torch.

Target: at most 0.15 s each. Timed as a user runs them: as whole processes, with Python's
compiled bytecode cached (PYTHONDONTWRITEBYTECODE unset, one warm-up run first), median of 20.
`status` reads a finished run of 5 experiments and collects its 5 hypothesis files. The torch
check runs the CLI in one process and then inspects sys.modules.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import scratch_project

ROOT = Path(__file__).resolve().parents[1]
RUNS = 20


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    subprocess.run(cmd, cwd=cwd, capture_output=True, env=env)  # warm: bytecode compiled and cached
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> dict[str, float]:
    exe = Path(sys.executable).with_name("autoresearch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "autoresearch"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    help_med, help_min = timed([*cmd, "--help"], ROOT, env)
    project = scratch_project(5)
    try:
        subprocess.run([*cmd, "run", "--tag", "bench", "-q"], cwd=project, capture_output=True, check=True, env=env)
        status_med, status_min = timed([*cmd, "status"], project, env)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    probe = ("import sys; from autoresearch.cli import main; main(['run', '--collect-only', 'experiments/']); "
             "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], cwd=ROOT, capture_output=True, text=True)
    torch_lines = [line for line in r.stderr.splitlines() if "| torch" in line or line.endswith(" torch")]
    verdict = [line for line in r.stderr.splitlines() if line.startswith("torch imported:")]
    print(f"startup: `autoresearch --help` median {help_med * 1000:.0f} ms (min {help_min * 1000:.0f} ms), "
          f"`autoresearch status` median {status_med * 1000:.0f} ms (min {status_min * 1000:.0f} ms) over {RUNS} "
          f"runs each (target <= 150 ms); collecting experiments/: {verdict[0] if verdict else '?'}, "
          f"{len(torch_lines)} torch modules in -X importtime")
    return {"help_ms": help_med * 1000, "status_ms": status_med * 1000, "torch_modules": len(torch_lines)}


if __name__ == "__main__":
    main()
