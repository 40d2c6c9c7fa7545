"""One end-to-end run of the real reference workload through the runner, on the CPU.

A few optimizer steps on a small corpus: the same train.py, prepare.py and runner as a real
run, minus the wall time.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from autoresearch.plugins.results_tsv import read_results
from conftest import ROOT, git
from test_workload import make_corpus, run_prepare


def test_reference_workload_end_to_end(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("train.py", "prepare.py"):
        shutil.copy(ROOT / name, project)
    # a run's hard limit far above its budget: under load, start-up and evaluation take long, which is no crash
    (project / "pyproject.toml").write_text("[tool.autoresearch]\ntimeout = 900\n")
    (project / "experiments").mkdir()
    (project / "experiments" / "lr.toml").write_text(
        'description = "raise matrix LR"\nhypothesis = "faster progress in few steps"\n'
        '[set]\nMATRIX_LR = 0.02\n[expect]\nval_bpb = "< baseline"\n')
    (project / "experiments" / "bad_act.toml").write_text(
        'description = "an activation that does not exist"\nhypothesis = "crashes at the first step"\n'
        '[set]\nACTIVATION = "nope"\n')
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    cache = tmp_path / "cache"
    assert run_prepare(cache, "--source", str(make_corpus(tmp_path / "src", files=40))).returncode == 0
    env = {**os.environ, "AUTORESEARCH_CACHE": str(cache), "AUTORESEARCH_MAX_STEPS": "8"}
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--budget", "5", "--tag", "e2e"], cwd=project,
                       capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = read_results(project / "results.tsv")
    assert [x["description"] for x in rows] == ["baseline", "an activation that does not exist", "raise matrix LR"]
    assert [x["status"] for x in rows][:2] == ["keep", "crash"]
    assert rows[2]["status"] in ("keep", "discard")
    assert 1.0 < float(rows[0]["val_bpb"]) < 8.5 and float(rows[0]["memory_gb"]) > 0
    journal = (project / "experiments" / "journal.md").read_text()
    assert "ValueError: unknown ACTIVATION 'nope' (relu2, gelu or silu)" in journal
    assert "torch" not in r.stdout.lower()  # workload output stays in its log
    # the morning after, on the real workload: show names each change, the report has seed 002's tables
    def command(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "autoresearch", *args], cwd=project, capture_output=True,
                             text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    shown = {e["name"]: e for e in json.loads(command("show", "--json"))["experiments"]}
    assert shown["lr"]["params"] == {"MATRIX_LR": "0.02"} and shown["bad_act"]["status"] == "crash"
    assert 1.0 < shown["baseline"]["metrics"]["val_bpb"]["mean"] < 8.5
    report = command("report")
    assert "## Summary of iterations" in report and "| MATRIX_LR |" in report
    assert "| cpu |" in report.lower() or "CPU" in report  # cost per iteration, priced by the device that ran


def test_the_protected_evaluator_scores_the_reference_model_and_catches_a_peeking_one(tmp_path):
    """evaluate = prepare.py's evaluator: it scores the model train.py saved, from logits that the
    candidate's code computes in a sandbox of its own, with the baseline's data and code; the
    workload's own val_bpb is kept as reported.val_bpb. A model that attends to later bytes (not
    causal) learns to copy the next byte: its own number looks excellent, the evaluator refuses it."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("train.py", "prepare.py"):
        shutil.copy(ROOT / name, project)
    (project / "pyproject.toml").write_text(
        '[tool.autoresearch]\nrepeats = 1\nmax_repeats = 1\nbudget_steps = 8\ntimeout = 900\n'
        'evaluate = ["{python}", "prepare.py", "evaluate", "{output}"]\n')
    (project / "experiments").mkdir()
    (project / "experiments" / "peek.toml").write_text(
        'description = "attention that sees the future"\nhypothesis = "a forged gain"\n'
        '[[replace]]\nold = "is_causal=True"\nnew = "is_causal=False"\n')
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    cache = tmp_path / "cache"
    assert run_prepare(cache, "--source", str(make_corpus(tmp_path / "src", files=40))).returncode == 0
    env = {**os.environ, "AUTORESEARCH_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--budget", "30", "--tag", "ev"], cwd=project,
                       capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    entries = [json.loads(x) for x in (project / ".autoresearch/runs/ev/results.jsonl").read_text().splitlines()]
    base, peek = entries
    assert base["status"] == "keep"
    # the evaluator's number decides; the workload's own is kept beside it, and they agree (float16 logits)
    assert abs(base["metrics"]["val_bpb"] - base["metrics"]["reported.val_bpb"]) < 2e-3
    assert peek["status"] == "crash" and "not causal" in peek["root_cause"], peek["root_cause"]
