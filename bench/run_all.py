"""Run every benchmark and print its figures: python bench/run_all.py [--skip-workload]."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_collect  # noqa: E402
import bench_runner  # noqa: E402
import bench_startup  # noqa: E402
import bench_workload  # noqa: E402

if __name__ == "__main__":
    bench_startup.main()
    bench_collect.main()
    bench_runner.main()
    if "--skip-workload" not in sys.argv:
        bench_workload.main()
