"""autoresearch against the protocol done by hand, side by side in one run.

    python bench/bench_byhand.py [N]        # N hypotheses (default 50)

The by-hand loop is what the seed's program.md asks of an agent, as a shell script: set the
constant, commit, run the workload, grep the metric, keep (the branch stays) or reset, append a
row to results.tsv. autoresearch does the same and more (baseline repeats for the noise, a run
folder without .git, the sandbox, the ledger, the journal). Both run the tests' fake workload in
scratch copies of one project; the overhead of each is its wall time per run of the workload
minus a bare run of the workload (measured between them, so load falls on all alike).
Targets (issue #26): autoresearch's overhead <= 1.2x the shell loop's; <= 25 ms per experiment.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import scratch_project

BYHAND = r"""set -eu
best=""
for f in experiments/h*.toml; do
  lr=$(sed -n 's/^LR = //p' "$f")
  sed -i "s/^LR = .*/LR = $lr/" train.py
  git -c user.email=b@b -c user.name=b commit -qam "$f"
  "$PYTHON" train.py > run.log 2>&1 || true
  v=$(sed -n 's/^val_bpb: *//p' run.log)
  commit=$(git rev-parse --short=7 HEAD)
  if [ -n "$v" ] && { [ -z "$best" ] || awk "BEGIN{exit !($v < $best)}"; }; then
    best=$v; status=keep
  else
    git reset -q --hard HEAD~1; status=discard
  fi
  printf '%s\t%s\t0.0\t%s\t%s\n' "$commit" "${v:-0.000000}" "$status" "$f" >> results.tsv
done
"""


def bare(root: Path, n: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "train.py"], cwd=root, capture_output=True)
    return (time.perf_counter() - start) / n


def byhand(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    subprocess.run(["bash", "-c", BYHAND], cwd=root, check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - start, len((root / "results.tsv").read_text().splitlines())


def autoresearch(root: Path, *flags: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--tag", "bench", "-q", *flags], cwd=root,
                       capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert r.returncode == 0, r.stderr
    entries = [json.loads(x) for x in (root / ".autoresearch/runs/bench/results.jsonl").read_text().splitlines()]
    return wall, len(entries), sum(len(e.get("runs") or [0]) for e in entries)


def main(n: int = 50) -> dict[str, float]:
    roots = {name: scratch_project(n) for name in ("byhand", "auto", "off")}
    try:
        base = [bare(roots["byhand"])]
        hand_wall, hand_runs = byhand(roots["byhand"])
        base.append(bare(roots["auto"]))
        auto_wall, experiments, auto_runs = autoresearch(roots["auto"])
        base.append(bare(roots["off"]))
        off_wall, _, off_runs = autoresearch(roots["off"], "--sandbox", "off")
        base.append(bare(roots["byhand"]))
        floor = sum(base) / len(base)
        hand = hand_wall / hand_runs - floor
        auto = auto_wall / auto_runs - floor
        off = off_wall / off_runs - floor
        print(f"by hand (shell loop): {hand_runs} runs in {hand_wall:.2f}s; overhead {hand * 1000:.0f} ms per run")
        print(f"autoresearch:         {auto_runs} runs ({experiments} experiments) in {auto_wall:.2f}s; overhead "
              f"{auto * 1000:.0f} ms per run = {auto / hand:.2f}x the shell loop's (target <= 1.2x)")
        print(f"  with --sandbox off: {off_runs} runs in {off_wall:.2f}s; overhead {off * 1000:.0f} ms per run "
              f"= {off / hand:.2f}x")
        print(f"a bare run of the fake workload: {floor * 1000:.0f} ms (mean of {len(base)} measurements of 5)")
        return {"byhand_ms": hand * 1000, "auto_ms": auto * 1000, "off_ms": off * 1000, "ratio": auto / hand}
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
