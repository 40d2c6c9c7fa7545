"""The runner's overhead per experiment: everything but the workload process.

    python bench/bench_runner.py [N]        # N hypotheses (default 50)

N hypotheses against a workload that prints its summary at once. Overhead = the session's wall
time minus the time the workload processes themselves ran (recorded per experiment), divided by
the number of experiments. Target (issues #20, #26): at most 25 ms. What of it is bookkeeping, at
50, 300 and 1,000 hypotheses: bench_bookkeeping.py.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

from common import scratch_project

N = 50


def main(n: int = N) -> dict[str, float]:
    root = scratch_project(n)
    try:
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--tag", "bench", "-q"], cwd=root,
                           capture_output=True, text=True)
        wall = time.perf_counter() - start
        assert r.returncode == 0, r.stderr
        entries = [json.loads(x) for x in (root / ".autoresearch/runs/bench/results.jsonl").read_text().splitlines()]
        workload = sum(e["duration"] for e in entries)
        # the fixed cost of one start-up (imports, collection, worktree) is spread over the run
        overhead = (wall - workload) / len(entries)
        spawn = time.perf_counter()
        for _ in range(5):
            subprocess.run([sys.executable, "train.py"], cwd=root, capture_output=True)
        bare = (time.perf_counter() - spawn) / 5
        print(f"runner overhead: {len(entries)} experiments in {wall:.2f}s wall; workload processes "
              f"{workload:.2f}s; overhead {overhead * 1000:.0f} ms per experiment (target <= 25 ms); "
              f"a bare run of the fake workload takes {bare * 1000:.0f} ms")
        return {"experiments": len(entries), "wall_s": wall, "overhead_ms": overhead * 1000}
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)
