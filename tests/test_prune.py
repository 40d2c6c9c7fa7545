"""Pruning: a run whose learning curve stays behind the tip's is stopped, as a discard."""
from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autoresearch.plugins.prune import at, jitter
from autoresearch.plugins.results_tsv import read_results
from conftest import git, hyp
from test_session import run_dir

# A workload that prints a learning curve: loss 3 -> 1.5 over the budget, plus OFFSET * sqrt(share)
CURVE_TRAIN = '''\
OFFSET = 0.0
LABEL = "a"
STEPS = 16
STEP_SECONDS = 0.2
import os, time
for i in range(1, STEPS + 1):
    share = i / STEPS
    loss = 3.0 * (1 - 0.5 * share) + OFFSET * share ** 0.5
    print(f"step {i:05d} ({100 * share:.1f}%) | loss {loss:.6f} | remaining 0s", flush=True)
    time.sleep(STEP_SECONDS)
print("---")
print(f"val_bpb:          {loss:.6f}")
'''


@pytest.fixture
def curves(repo: Path) -> Path:
    (repo / "train.py").write_text(CURVE_TRAIN)
    (repo / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         "repeats = 1\nprune_patience = 2\n")
    git(repo, "commit", "-qam", "a workload with a learning curve")
    return repo


def change(repo: Path, name: str, sets: str) -> None:
    hyp(repo, name, f'description = "{name}"\nhypothesis = "testing {name}"\n[set]\n{sets}\n')


def test_interpolation_between_points():
    curve = [(0.1, 3.0), (0.5, 2.0), (1.0, 1.0)]
    assert at(curve, 0.3) == pytest.approx(2.5) and at(curve, 1.0) == 1.0
    assert at(curve, 0.05) is None and at(curve, 1.1) is None


def test_one_curve_measures_its_own_noise():
    import random

    rng = random.Random(1)
    noisy = [(i / 200, 3 - i / 100 + rng.gauss(0, 0.02)) for i in range(200)]
    assert jitter(noisy) == pytest.approx(0.02, rel=0.2)
    assert jitter([(i / 10, 3 - i / 10) for i in range(10)]) == pytest.approx(0.0, abs=1e-12)


def test_a_run_behind_the_tips_curve_is_pruned_as_a_discard(curves, cli):
    repo = curves
    change(repo, "a_worse", "OFFSET = 1.0")
    change(repo, "b_null", 'LABEL = "b"')
    r = cli("run", "--tag", "t1", "--junitxml", "junit.xml")
    assert r.rc == 0, r
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("a_worse", "discard"), ("b_null", "discard")]
    entries = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    worse = entries[1]
    assert worse["cause"] == "pruned" and worse["runs"][0]["cause"] == "pruned"
    assert worse["reason"].startswith("discard: pruned at ")
    assert "vs " in worse["reason"] and "for the tip at the same point" in worse["reason"]
    assert worse["duration"] < entries[0]["duration"] * 0.8  # stopped well before the end
    assert entries[2]["cause"] == "" and entries[2]["metrics"]["val_bpb"] == pytest.approx(1.5)  # ran to the end
    # curves are kept per run; the journal and JUnit say pruned
    kept = sorted(p.name for p in (run_dir(repo) / "curves").iterdir())
    assert kept == ["000-baseline.tsv", "001-a_worse.tsv", "002-b_null.1.tsv", "002-b_null.tsv"]  # b ran twice: no noise known
    base_curve = (run_dir(repo) / "curves" / "000-baseline.tsv").read_text().splitlines()
    assert len(base_curve) >= 4 and base_curve[-1] == "1\t1.5"
    journal = (repo / "experiments" / "journal.md").read_text()
    assert "**Actual outcome**: pruned — pruned at " in journal
    case = ET.parse(repo / "junit.xml").getroot().find(".//testcase[@name='a_worse']")
    assert case.find("failure") is None  # a discard passes; its verdict is in the properties
    assert {p.get("name"): p.get("value") for p in case.iter("property")}["status"] == "pruned"
    # report --plot draws the curves beside the metric: a wider figure than without them
    with_curves, without = repo / "with.png", repo / "without.png"
    assert cli("report", "--plot", str(with_curves)).rc == 0
    shutil.move(run_dir(repo) / "curves", repo / "curves.moved")
    assert cli("report", "--plot", str(without)).rc == 0
    width = lambda png: int.from_bytes(png.read_bytes()[16:20], "big")  # the PNG header's width
    assert width(with_curves) > 1.3 * width(without)


def test_pruning_can_be_turned_off(curves, cli):
    change(curves, "a_worse", "OFFSET = 1.0")
    assert cli("run", "--tag", "t1", "--no-prune").rc == 0
    entry = json.loads((run_dir(curves) / "results.jsonl").read_text().splitlines()[1])
    assert entry["cause"] == "" and entry["status"] == "discard" and entry["metrics"]["val_bpb"] == pytest.approx(2.5)
    (curves / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                           "repeats = 1\n")  # prune_patience would be an unknown setting
    git(curves, "commit", "-qam", "no prune settings")
    assert cli("run", "--tag", "t2", "-p", "no:prune").rc == 0
    assert not (run_dir(curves, "t2") / "curves").exists()


def test_a_workload_without_progress_lines_is_never_pruned_and_says_so_once(repo, cli):
    train = (repo / "train.py").read_text().replace('print("step 00001 (100.0%) | loss 2.500000 | remaining 0s", flush=True)\n', "")
    (repo / "train.py").write_text(train)
    git(repo, "commit", "-qam", "no progress lines")
    change(repo, "a", "LR = 0.001")
    change(repo, "b", "LR = 0.002")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert r.out.count("no run will be pruned") == 1


def test_a_log_written_again_starts_a_new_curve(tmp_path):
    from types import SimpleNamespace

    from autoresearch.plugins.prune import DEFAULT_PATTERN, Pruner

    settings = dict(prune_pattern=DEFAULT_PATTERN, prune=True, prune_after=0.25, prune_patience=3,
                    prune_margin="2%", noise_k=2.0, budget=None)
    pruner = Pruner(SimpleNamespace(get=lambda k, d=None: settings.get(k, d)))
    session = SimpleNamespace(run_dir=tmp_path, tip="t", history=[])
    log = tmp_path / "logs" / "003-x.log"
    log.parent.mkdir()
    experiment = SimpleNamespace(session=session, hypothesis=object(), log_path=log)
    line = lambda pct, loss: f"step 00001 ({pct:.1f}%) | loss {loss:.6f} | remaining 0s\n"  # noqa: E731
    log.write_text("".join(line(p, 9.0) for p in (10, 30, 50, 60)))
    pruner.autoresearch_experiment_progress(experiment, elapsed=6.0, line="", loss=None)
    # the experiment runs anew (the tip moved): the same log, written from the start
    log.write_text("".join(line(p, 3.0) for p in (10, 20, 30, 40, 50, 60, 70, 80)))
    pruner.autoresearch_experiment_progress(experiment, elapsed=1.0, line="", loss=None)
    curve = (tmp_path / "curves" / "003-x.tsv").read_text().splitlines()
    assert curve == [f"{p / 100:g}\t3" for p in (10, 20, 30, 40, 50, 60, 70, 80)]
