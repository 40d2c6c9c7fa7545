"""What a smoke run saves and costs: the workload time each candidate took, with and without
``smoke_steps``, through the runner (real sessions, one candidate of each kind).

    fake workload (bench's own: a start-up, progress lines, a summary; budget 4 s, timeout 12 s;
                   smoke: 2 steps, 1 s, budget_slack 3 s)
      step1   crashes at its first step            (a shape error)
      eval    trains its whole budget, then crashes (an error in the evaluation)
      hang    prints nothing and never ends         (killed at the limit)
      pass    a healthy candidate                   (the smoke run's overhead)
    reference workload (train.py on the CPU, a small corpus, 8 steps within 5 s; smoke: 2 steps)
      step1   ACTIVATION = "nope": crashes at its first step
      pass    MATRIX_LR = 0.02

Each candidate's cost is its runs' seconds plus its smoke run's, from the ledger. Run as
``python bench/bench_smoke.py`` (``--fake`` or ``--reference`` for one workload only).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

BENCH_TRAIN = '''\
STARTUP = 0.5
MODE = ""
import os, sys, time
time.sleep(STARTUP)  # imports, data, model: what every run pays before its first step
budget = float(os.environ.get("AUTORESEARCH_TIME_BUDGET", "300"))
steps = int(os.environ.get("AUTORESEARCH_MAX_STEPS") or 10**9)
if MODE == "hang":
    time.sleep(3600)
t0, step = time.time(), 0
while time.time() - t0 < budget and step < steps:
    step += 1
    if MODE == "step1":
        raise ValueError("shape mismatch at step 1")
    time.sleep(0.05)
    print(f"step {step:05d} ({100 * min(1, (time.time() - t0) / budget):.1f}%) | loss {3.0 / step:.4f}", flush=True)
if MODE == "eval":
    raise RuntimeError("the evaluation failed")
print("---")
print("val_bpb:          1.000000")
print("peak_vram_mb:     1.0")
'''

FAKE = {"step1": 'MODE = "step1"', "eval": 'MODE = "eval"', "hang": 'MODE = "hang"', "pass": "STARTUP = 0.51"}
REFERENCE = {"step1": 'ACTIVATION = "nope"', "pass": "MATRIX_LR = 0.02"}


def project(files: dict[str, str], settings: str, hypotheses: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="autoresearch-bench-smoke-"))
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "pyproject.toml").write_text("[tool.autoresearch]\nrepeats = 1\nmax_repeats = 1\nprune = false\n" + settings)
    (root / "experiments").mkdir()
    for name, change in hypotheses.items():
        (root / "experiments" / f"{name}.toml").write_text(
            f'description = "{name}"\nhypothesis = "benchmark"\n[set]\n{change}\n')
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def session(root: Path, env: dict[str, str] | None = None) -> dict[str, tuple[float, str]]:
    """Run it; each experiment's (seconds of workload, smoke runs included; its status and cause)."""
    subprocess.run([sys.executable, "-m", "autoresearch", "run", "--tag", "b", "-q"], cwd=root,
                   capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=1800)
    out = {}
    for line in (root / ".autoresearch/runs/b/ledger.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["event"] == "done":
            r = entry["report"]
            seconds = sum(run["duration"] + run.get("smoke_seconds", 0.0) for run in r["runs"])
            out[r["name"]] = (seconds, f"{r['status']}{' (' + r['cause'] + ')' if r['cause'] else ''}")
    return out


def compare(title: str, make, kinds: list[str], env: dict[str, str] | None = None, smoke: str = "") -> None:
    runs = {}
    for label, settings in (("without smoke", ""), ("with smoke", smoke)):
        root = make(settings)
        try:
            runs[label] = session(root, env)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{title}: seconds of workload each candidate cost (status)")
    print(f"  {'candidate':<10} {'without smoke':>24} {'with smoke':>24}")
    for kind in ["baseline", *kinds]:
        cells = [runs[label].get(kind, (float("nan"), "missing")) for label in ("without smoke", "with smoke")]
        print(f"  {kind:<10} " + " ".join(f"{s:7.1f} s {status[:15]:<15}" for s, status in cells))


SMOKE = "smoke_steps = 2\nsmoke_budget = 1\nbudget_slack = 3\n"  # the fake starts in 0.5 s
SMOKE_REFERENCE = "smoke_steps = 2\n"  # torch's start-up alone takes seconds here: no tighter limit


def main() -> None:
    if "--reference" not in sys.argv:
        compare("fake workload (budget 4 s, timeout 12 s)",
                lambda s: project({"train.py": BENCH_TRAIN}, f'command = ["{sys.executable}", "train.py"]\nbudget = 4\n'
                                  f"timeout = 12\n{s}", FAKE), list(FAKE), smoke=SMOKE)
    if "--fake" in sys.argv:
        return
    from test_workload import make_corpus, run_prepare

    scratch = Path(tempfile.mkdtemp(prefix="autoresearch-bench-corpus-"))
    try:
        cache = scratch / "cache"
        assert run_prepare(cache, "--source", str(make_corpus(scratch / "src", files=40))).returncode == 0
        files = {name: (ROOT / name).read_text() for name in ("train.py", "prepare.py")}
        compare("reference workload (train.py on the CPU, 8 steps, budget 5 s)",
                lambda s: project(files, f"budget = 5\nbudget_steps = 8\ntimeout = 600\n{s}", REFERENCE),
                list(REFERENCE), env={"AUTORESEARCH_CACHE": str(cache)}, smoke=SMOKE_REFERENCE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
