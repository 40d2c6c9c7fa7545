"""The Ray executor's cost: its start-up (once per session) and its overhead per experiment, apart.

Sessions of K = 4 and K = 12 hypotheses (all discards) of a fake workload that sleeps --sleep
seconds, with one worker, on the local executor and on a local Ray (started by the runner). A
straight line through the two wall times of each executor, wall = start-up + K x per-experiment,
separates what is paid once per session from what every experiment pays; the Ray figures are
printed against the local executor's. Each pair is measured --repeat times (the median is kept).

    python bench/bench_ray.py [--sleep 0.5] [--repeat 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import lr_hypotheses, write_project

TRAIN = '''\
import os, time
LR = 0.01
time.sleep(float(os.environ.get("BENCH_SLEEP", "0.5")))
print("---")
print(f"val_bpb:          {1.0 + abs(LR - 0.03) * 10:.6f}")
'''


def project(root: Path, k: int) -> Path:
    # LR below the baseline's 0.01: every one a discard
    return write_project(root, TRAIN, lr_hypotheses([0.001 + i * 0.0005 for i in range(k)]))


def wall(root: Path, tag: str, executor: str, sleep: float) -> float:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--tag", tag, "-q", "--executor", executor],
                       cwd=root, capture_output=True, text=True, env={**os.environ, "BENCH_SLEEP": str(sleep)})
    seconds = time.perf_counter() - start
    assert r.returncode == 0, r.stderr[-2000:]
    return seconds


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sleep", type=float, default=0.5, help="seconds each run of the fake workload sleeps")
    ap.add_argument("--repeat", type=int, default=1, help="measure each session this many times (median kept)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="autoresearch-bench-ray-"))
    sizes = (4, 12)
    fits = {}
    try:
        roots = {k: project(tmp / f"k{k}", k) for k in sizes}
        for executor in ("local", "ray"):
            walls = {k: statistics.median(wall(roots[k], f"{executor}{k}x{i}", executor, args.sleep)
                                          for i in range(args.repeat)) for k in sizes}
            per = (walls[sizes[1]] - walls[sizes[0]]) / (sizes[1] - sizes[0])
            fits[executor] = {"walls": walls, "per_experiment": per, "startup": walls[sizes[0]] - sizes[0] * per}
            print(f"{executor:<5} wall {walls[sizes[0]]:5.1f} s at K={sizes[0]}, {walls[sizes[1]]:5.1f} s at "
                  f"K={sizes[1]}: {per:5.2f} s per experiment, {fits[executor]['startup']:5.1f} s once per session")
        extra = fits["ray"]["per_experiment"] - fits["local"]["per_experiment"]
        once = fits["ray"]["startup"] - fits["local"]["startup"]
        print(f"Ray over local: {extra * 1000:+.0f} ms per experiment, {once:+.1f} s once per session "
              f"(a {args.sleep:g} s workload, one worker)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return fits


if __name__ == "__main__":
    main()
