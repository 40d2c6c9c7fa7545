"""What pruning saves: the same session with and without it, on a fake workload with a learning curve.

    python bench/bench_prune.py          (about 9 minutes on 2 cores)

The workload prints a loss curve over about 4 s (40 steps): loss = 3 (1 - share / 2) + OFFSET
sqrt(share), plus Gaussian noise per step (0.02) and on the final val_bpb (0.01), seeded by
AUTORESEARCH_SEED and the hypothesis. The session: 8 hypotheses clearly worse (OFFSET +0.3 to
+1.0), 6 null changes (OFFSET 0) and 3 real gains (OFFSET -0.04, 4 sigma), interleaved, default
settings (repeats 5: a keep and the baseline run 5 times, a grey-zone candidate up to 5), then
again with --repeats 1 --max-repeats 1 (one run per hypothesis, the protocol before repeats). Printed for
pruning on and off: workload seconds (all, and on the clearly worse hypotheses alone), the final
best, how many were pruned, and how many null changes and real gains were pruned (wrongly).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = '''\
OFFSET = 0.0
LABEL = "base"
STEPS = 40
STEP_SECONDS = 0.1
import os, random, time
rng = random.Random(f"{os.environ.get('AUTORESEARCH_SEED', '0')}-{OFFSET}-{LABEL}")
for i in range(1, STEPS + 1):
    share = i / STEPS
    loss = 3.0 * (1 - 0.5 * share) + OFFSET * share ** 0.5 + rng.gauss(0, 0.02)
    print(f"step {i:05d} ({100 * share:.1f}%) | loss {loss:.6f} | remaining 0s", flush=True)
    time.sleep(STEP_SECONDS)
print("---")
print(f"val_bpb:          {1.5 + OFFSET + rng.gauss(0, 0.01):.6f}")
'''

# (name, kind, constants): interleaved worse / null / real
PLAN = [("worse", "OFFSET = 0.3"), ("null", 'LABEL = "n1"'), ("worse", "OFFSET = 0.5"), ("real", "OFFSET = -0.04"),
        ("worse", "OFFSET = 0.7"), ("null", 'LABEL = "n2"'), ("worse", "OFFSET = 1.0"), ("null", 'LABEL = "n3"'),
        ("worse", "OFFSET = 0.4"), ("real", "OFFSET = -0.08"), ("worse", "OFFSET = 0.6"), ("null", 'LABEL = "n4"'),
        ("worse", "OFFSET = 0.8"), ("null", 'LABEL = "n5"'), ("worse", "OFFSET = 0.9"), ("real", "OFFSET = -0.12"),
        ("null", 'LABEL = "n6"')]


def project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="autoresearch-prune-"))
    (root / "train.py").write_text(TRAIN)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         "lessons_every = 1000000\n")
    (root / "experiments").mkdir()
    for i, (kind, sets) in enumerate(PLAN):
        (root / "experiments" / f"h{i:02d}_{kind}.toml").write_text(
            f'description = "{kind} {i}"\nhypothesis = "benchmark"\n[set]\n{sets}\n')
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def session(prune: bool, repeats: int) -> dict:
    root = project()
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "autoresearch", "run", "-q", "--tag", "b", "--prune" if prune else "--no-prune",
                    "--repeats", str(repeats), "--max-repeats", str(repeats)],
                   cwd=root, check=True, capture_output=True)
    wall = time.monotonic() - start
    entries = [json.loads(x) for x in (root / ".autoresearch/runs/b/results.jsonl").read_text().splitlines()]
    pruned = [e for e in entries if e.get("cause") == "pruned"]
    kept = [e for e in entries if e["status"] == "keep"]
    return dict(workload=sum(e["duration"] for e in entries), wall=wall,
                on_worse=sum(e["duration"] for e in entries if e["description"].startswith("worse")), best=kept[-1]["mean"],
                pruned=len(pruned), worse=sum(e["description"].startswith("worse") for e in pruned),
                nulls=sum(e["description"].startswith("null") for e in pruned),
                reals=sum(e["description"].startswith("real") for e in pruned),
                runs=sum(len(e["runs"]) for e in entries))


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    kinds = {k: sum(1 for kind, _ in PLAN if kind == k) for k in ("worse", "null", "real")}
    print(f"pruning: {len(PLAN)} hypotheses ({kinds['worse']} clearly worse, {kinds['null']} null, "
          f"{kinds['real']} real gains), a 4 s learning curve each run")
    for repeats in (5, 1):
        off, on = session(False, repeats), session(True, repeats)
        print(f"\n--repeats {repeats} --max-repeats {repeats}"
              f"{' (the default)' if repeats == 5 else ' (one run per hypothesis)'}")
        print(f"{'':6s} {'workload s':>11s} {'on worse s':>11s} {'wall s':>8s} {'runs':>5s} {'final best':>11s} "
              f"{'pruned':>7s} {'worse':>6s} {'nulls':>6s} {'reals':>6s}")
        for name, r in (("off", off), ("on", on)):
            print(f"{name:6s} {r['workload']:11.1f} {r['on_worse']:11.1f} {r['wall']:8.1f} {r['runs']:5d} "
                  f"{r['best']:11.4f} {r['pruned']:7d} {r['worse']:6d} {r['nulls']:6d} {r['reals']:6d}")
        print(f"workload time saved: {1 - on['workload'] / off['workload']:.0%} of all "
              f"(target >= 30%), {1 - on['on_worse'] / off['on_worse']:.0%} of the clearly worse hypotheses' time; "
              f"same final best: {'yes' if abs(on['best'] - off['best']) < 1e-9 else 'NO'}")


if __name__ == "__main__":
    main()
