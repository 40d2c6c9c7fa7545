"""The stop/resume soak at length: python bench/soak.py [--stops N] [--per-session K] [--seed S] [-n W] [--minutes M]

Random SIGKILL (runner or whole group), SIGTERM, SIGINT and Ctrl-C (SIGINT to the group) at
random moments of a run on a fast fake workload, then resume until the run is done; every
promise of the README checked against an uninterrupted run (see tests/soak.py). Prints the stops
by kind and phase, and every violation. Target: 0 violations in >= 1,000 stops.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import soak  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stops", type=int, default=1000, help="stops in all (default 1000)")
    ap.add_argument("--per-session", type=int, default=8, help="stops before a run may finish (default 8)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-n", "--workers", type=int, default=1, help="workers of the soaked runs (default 1)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop after this long even if fewer stops landed (the run under way is finished and checked)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="autoresearch-soak-"))
    began = time.monotonic()
    try:
        stats = soak.run(tmp, args.stops, args.per_session, args.seed, workers=args.workers,
                         seconds=args.minutes * 60 if args.minutes else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(stats.stops.values())
    print(stats.table())
    print(f"soak ({args.workers} worker{'s' if args.workers > 1 else ''}): {total} stops in {stats.sessions} runs "
          f"({stats.attempts} runner starts) in "
          f"{time.monotonic() - began:.0f}s ({total / (time.monotonic() - began) * 60:.1f} stops a minute): "
          f"{len(stats.violations)} violations (target 0)")


if __name__ == "__main__":
    main()
