"""Run every benchmark and print its figures:
python bench/run_all.py [--skip-workload] [--skip-parallel] [--skip-prune] [--skip-smoke]

The long ones run on their own: python bench/soak.py (1,000 random stops), python
bench/bench_validity.py (the verdict's error rates, simulated).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_bookkeeping  # noqa: E402
import bench_byhand  # noqa: E402
import bench_collect  # noqa: E402
import bench_kinds_args  # noqa: E402
import bench_keys  # noqa: E402
import bench_parallel  # noqa: E402
import bench_prune  # noqa: E402
import bench_ray  # noqa: E402
import bench_runner  # noqa: E402
import bench_sandbox  # noqa: E402
import bench_show  # noqa: E402
import bench_smoke  # noqa: E402
import bench_startup  # noqa: E402
import bench_workload  # noqa: E402

if __name__ == "__main__":
    flags, sys.argv = set(sys.argv[1:]), sys.argv[:1]  # the benchmarks read their own arguments
    bench_startup.main()
    bench_collect.main()
    bench_kinds_args.main()
    bench_show.main()
    bench_keys.main()
    bench_runner.main()
    bench_bookkeeping.main([50, 300, 1000])
    bench_byhand.main()
    bench_sandbox.main()
    if "--skip-parallel" not in flags:
        bench_parallel.main()
        bench_ray.main()
    if "--skip-prune" not in flags:
        bench_prune.main()
    if "--skip-smoke" not in flags:
        bench_smoke.main()
    if "--skip-workload" not in flags:
        bench_workload.main()
