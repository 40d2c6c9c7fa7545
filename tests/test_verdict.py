"""Honest verdicts: the sequential rule on fixed sequences, and a real run of a noisy workload.

No randomness here: the rule is pinned on chosen values, and the noisy fake workload's value
moves with AUTORESEARCH_SEED by a fixed pattern (0, +1, -1, +2, -2, ... thousandths), so every
decision, its number of runs and its words are known in advance.
"""
from __future__ import annotations

import json
import math
import random

import pytest

from autoresearch.plugins import lessons
from autoresearch.plugins.results_tsv import read_results
from autoresearch.plugins.verdict import Rule, judge, simulate
from autoresearch.reports import Report, RunResult
from autoresearch.stats import AGAIN, DISCARD, KEEP, Evidence, amount, check_amount, fmt, pooled_sigma, sequential
from conftest import git, simple
from test_session import run_dir

BASE = (1.220, 1.221, 1.219, 1.222, 1.218)  # five runs of the baseline: sigma 0.00158
SIGMA = pooled_sigma([BASE])[0]


def test_pooled_sigma_counts_only_commits_that_ran_twice():
    assert pooled_sigma([(1.0,), (2.0,)]) == (None, 0)
    sigma, df = pooled_sigma([(1.0, 3.0), (10.0,), (5.0, 5.0, 8.0)])
    assert df == 3 and sigma == pytest.approx(math.sqrt((2 + 6) / 3))


@pytest.mark.parametrize("values, expected", [
    ((1.210,), KEEP),            # 0.010 better in one run: 5.8 standard errors, beyond 1.3 k
    ((1.225,), DISCARD),         # 0.005 worse: no run could make it a 2-sigma gain
    ((1.2215,), DISCARD),        # a hair worse: below the futility bound (0.23 SE)
    ((1.219,), AGAIN),           # 0.001 better: the grey zone, run again
    ((1.219, 1.2185), AGAIN),    # 0.00125 better over two runs: still grey
    ((1.219, 1.220), DISCARD),   # 0.0005 over two: short of a 2-sigma gain by more than 1.0 k
    ((1.218, 1.217, 1.219, 1.218, 1.2175), KEEP),  # 0.00215 better on the means of 5: 2.15 SE >= 1.6
    ((1.219, 1.218, 1.2205, 1.219, 1.2195), DISCARD),  # 0.0008 on the means of 5: decided, not beyond
])
def test_the_sequential_rule_on_fixed_values(values, expected):
    from autoresearch.stats import evidence

    assert sequential(evidence(values, BASE, SIGMA, "minimize"), k=2.0, max_repeats=5) == expected


def test_without_a_noise_estimate_it_runs_again_and_without_noise_the_sign_decides():
    assert sequential(Evidence(0.5, 1, 1, None), k=2, max_repeats=3) == AGAIN
    assert sequential(Evidence(0.5, 3, 1, None), k=2, max_repeats=3) == KEEP
    assert sequential(Evidence(0.001, 1, 5, 0.0), k=2, max_repeats=3) == KEEP  # sigma 0: the plain comparison
    assert sequential(Evidence(-0.001, 1, 5, 0.0), k=2, max_repeats=3) == DISCARD
    assert sequential(Evidence(0.0, 1, 5, 0.0), k=2, max_repeats=3) == DISCARD


def test_a_keep_is_confirmed_to_repeats_runs_and_must_beat_the_tips_mean():
    rule = Rule()
    assert judge((1.210,), BASE, BASE, SIGMA, 0, rule).status == AGAIN  # beyond the noise, but 1 run
    assert judge((1.210,) * 5, BASE, BASE, SIGMA, 0, rule).status == KEEP
    # built on an older baseline: better than it, not than the tip (mean 1.2101 of 5): discarded
    tip = (1.2100, 1.2110, 1.2090, 1.2120, 1.2085)
    j = judge((1.210,) * 5, BASE, tip, SIGMA, 0, rule)
    assert (j.status, j.why) == (DISCARD, "better than its baseline, not than the branch tip")


def test_thresholds_take_a_share_of_the_baseline():
    assert amount("0.1%", 3.0) == pytest.approx(0.003) and amount(0.002, 3.0) == 0.002
    assert check_amount("0.1%") is None and "percentage" in check_amount("a lot")
    assert check_amount("-1%") == "must not be negative"
    # 1% of 1.22 is 0.0122: an improvement of 0.010 beyond the noise is below it
    rule = Rule(min_improvement="1%", repeats=1)
    j = judge((1.210,), BASE, BASE, SIGMA, 0, rule)
    assert j.status == DISCARD and "below min_improvement 1%" in j.why


def test_values_are_shown_with_their_standard_error():
    assert fmt(3.44521, 0.0208, 3) == "3.4452 ± 0.012 (n=3)"
    assert fmt(1.22, 0.0, 5) == "1.220000 (n=5)" and fmt(1.22, None, 1) == "1.220000" and fmt(None, 1.0, 1) == "—"


def test_simulated_loop_keeps_few_null_changes():
    """The rule on a simulated loop (the benchmark's, smaller): seeded, so it is fixed."""
    results = [x for _ in range(10) for x in simulate(Rule(), random.Random(7), [0.0] * 40)]
    kept = sum(x[1] for x in results)
    assert kept / len(results) <= 0.03
    assert sum(x[2] for x in results) / len(results) < 2.0


def test_rules_are_drawn_only_from_decisions_beyond_the_noise():
    def tried(seq: int, new: str, beyond: bool) -> Report:
        return Report(seq=seq, tag="t", nodeid=f"e::{seq}", name=str(seq), key=str(seq), description="lr",
                      hypothesis="h", status="keep", reason="", metric="val_bpb", direction="minimize",
                      metrics={"val_bpb": 1.0}, baseline_metrics={"val_bpb": 1.001}, changes=(("LR", "0.01", new),),
                      runs=(RunResult(0, 1.0, "", metrics={"val_bpb": 1.0}),), beyond_noise=beyond)
    within = [tried(1, "0.02", False), tried(2, "0.03", False)]
    assert lessons.rules(within, "2026-11-22") == []
    beyond = [tried(1, "0.02", True), tried(2, "0.03", True)]
    assert lessons.rules(beyond, "2026-11-22") == [
        "- ALWAYS consider raiseing LR when tuning because all 2 tries were kept. Learned: 2026-11-22"]


NOISY = ('SEED_NOISE * int(os.environ.get("AUTORESEARCH_SEED", "0"))',
         'SEED_NOISE * [0, 1, -1, 2, -2, 0.5, -0.5, 1.5][int(os.environ.get("AUTORESEARCH_SEED", "0")) % 8]')


@pytest.fixture
def noisy(repo):
    """The fake workload with noise: +0, +1, -1, +2, -2, ... thousandths by seed."""
    train = (repo / "train.py").read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.001").replace(*NOISY)
    (repo / "train.py").write_text(train)
    git(repo, "commit", "-qam", "a noisy workload")
    return repo


def test_a_noisy_run_decides_beyond_the_noise_and_says_how_sure(noisy, cli):
    repo = noisy
    simple(repo, "a", "LR = 0.02")                        # 0.1 better: kept, confirmed to 5 runs
    simple(repo, "b", "DEPTH = 5")                        # 0.01 worse: discarded after one run
    simple(repo, "c", "LR = 0.0201", 'val_bpb = "< baseline"')  # 0.001 better: grey, then discarded
    simple(repo, "d", 'CRASH = "exit"', 'val_bpb = "< baseline"')
    r = cli("run", "--tag", "t1", "-v")
    assert r.rc == 0, r
    entries = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    assert [(e["name"], e["status"], e["n"]) for e in entries] == [
        ("baseline", "keep", 5), ("a", "keep", 5), ("b", "discard", 1), ("c", "discard", 4), ("d", "crash", 0)]
    assert [[run["seed"] for run in e["runs"]] for e in entries][:4] == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0], [0, 1, 2, 3]]
    assert entries[3]["values"] == [1.119, 1.12, 1.118, 1.121] and entries[3]["mean"] == pytest.approx(1.1195)
    assert entries[0]["sigma"] == pytest.approx(SIGMA) and entries[0]["sem"] == pytest.approx(SIGMA / math.sqrt(5))
    # results.tsv keeps the seed's five columns; its value is the mean
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["val_bpb"], x["status"]) for x in rows] == [
        ("baseline", "1.220000", "keep"), ("a", "1.120000", "keep"), ("b", "1.130000", "discard"),
        ("c", "1.119500", "discard"), ("d", "0.000000", "crash")]
    reasons = {e["name"]: e["reason"] for e in entries}
    assert reasons["a"].startswith("keep: -0.1000 ± 0.001 val_bpb, +100.0 SE after 5 runs, +0 lines (beyond the noise)")
    assert reasons["b"].startswith("discard: +0.0100 ± 0.0017 val_bpb, -5.8 SE after 1 run, +0 lines (worse beyond")
    assert reasons["c"].endswith("after 4 runs, +0 lines (not beyond the noise)")
    assert [e["beyond_noise"] for e in entries[1:4]] == [True, True, False]
    # the expectation: c's 0.0005 is within the noise; a crash tested nothing
    assert [e["expectation"] for e in entries[3:]] == ["inconclusive", "untested"]
    assert "val_bpb 1.1195 ± 0.001 < 1.12: within the noise" in entries[3]["expectation_details"][0]
    # terminal and journal show each value with its uncertainty and the runs it took
    assert "val_bpb 1.1200 ± 0.00071 (n=5)" in r.out and "keep: -0.1000 ± 0.001 val_bpb" in r.out
    assert "noise: σ 0.0015 val_bpb (11 degrees of freedom); kept: beating the tip by ≥ 0.0043" in r.out
    journal = (repo / "experiments" / "journal.md").read_text()
    assert "**Actual outcome**: val_bpb 1.2200 ± 0.00071 (n=5)" in journal
    assert "LR 0.02 → 0.0201 did not move val_bpb beyond the noise (-0.0005 in 4 runs) and was discarded" in journal
    assert "**Next**: Within noise: try a bolder version" in journal
    # status shows the noise floor
    r = cli("status")
    assert r.out.splitlines()[2].startswith("noise: σ 0.0015 val_bpb (11 degrees of freedom)")
    logs = sorted(p.name for p in (run_dir(repo) / "logs").iterdir())
    assert logs[:5] == ["000-baseline.1.log", "000-baseline.2.log", "000-baseline.3.log", "000-baseline.4.log",
                        "000-baseline.log"]


def test_calibrate_measures_the_noise_in_a_scratch_worktree(noisy, cli):
    repo = noisy
    r = cli("calibrate", "--runs", "5")
    assert r.rc == 0, r
    values = [float(line.split()[5]) for line in r.out.splitlines() if line.startswith("  run ")]
    assert values == list(BASE)
    assert f"σ {SIGMA:.3g} run to run" in r.out
    assert f"improvements of {(1.6 + 0.84) * SIGMA * math.sqrt(1 / 8 + 1 / 5):.2g} and more are kept about 4 times in 5" in r.out
    assert "<- these settings" in r.out and "experiments/hour" in r.out
    # nothing of a run: no branch, no ledger; the scratch worktree is gone and the state untracked
    assert git(repo, "branch", "--list", "autoresearch/*") == ""
    assert not (repo / ".autoresearch" / "runs").exists()
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert git(repo, "status", "--porcelain") == ""
    assert cli("calibrate", "--runs", "1").rc == 4


def test_the_step_budget_reaches_the_workload(repo, cli):
    train = (repo / "train.py").read_text().replace(
        'print(f"depth:', 'print(f"steps_budget:     {os.environ.get(\'AUTORESEARCH_MAX_STEPS\', 0)}")\nprint(f"depth:')
    (repo / "train.py").write_text(train)
    git(repo, "commit", "-qam", "print the step budget")
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1", "--budget-steps", "40").rc == 0
    entry = json.loads((run_dir(repo) / "results.jsonl").read_text().splitlines()[0])
    assert entry["metrics"]["steps_budget"] == 40.0
    assert cli("run", "--tag", "t2", "--budget-steps", "0").rc == 4


def test_paired_runs_give_the_candidate_and_the_tip_the_same_seeds_and_decide_on_the_differences(noisy, cli):
    repo = noisy
    train = (repo / "train.py").read_text() + 'print(f"seed:             {os.environ[\'AUTORESEARCH_SEED\']}")\n'
    (repo / "train.py").write_text(train)
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'design = "paired"\n')
    git(repo, "commit", "-qam", "paired runs, the seed printed")
    simple(repo, "a", "LR = 0.0105")  # 0.005 better on every seed
    simple(repo, "b", "DEPTH = 5")    # 0.01 worse on every seed
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert "design paired" in r.out  # the header says which design is in use
    entries = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    assert [(e["name"], e["status"], e["n"]) for e in entries] == [("baseline", "keep", 5), ("a", "keep", 2),
                                                                  ("b", "discard", 1)]
    ledger = [json.loads(x) for x in (run_dir(repo) / "ledger.jsonl").read_text().splitlines()]
    pairs = [(e["seq"], e["run"]["seed"], e["commit"]) for e in ledger if e["event"] == "paired"]
    base_commit, a_commit = entries[0]["commit"], entries[1]["commit"]
    assert pairs == [(1, 0, base_commit), (1, 1, base_commit), (2, 0, a_commit)]
    # run k of the candidate and of the tip both got seed k: each log says so
    logs = run_dir(repo) / "logs"
    for name, seed in (("001-a.log", 0), ("001-a.tip.log", 0), ("001-a.1.log", 1), ("001-a.tip.1.log", 1),
                       ("002-b.log", 0), ("002-b.tip.log", 0)):
        assert f"seed:             {seed}\n" in (logs / name).read_text(), name
    assert [run["seed"] for run in entries[1]["runs"]] == [0, 1]
    # the decision is on the differences: exactly 0.005 on each seed (unpaired, the mean of seeds 0 and 1
    # against all five of the baseline's runs would be 0.0045), and a keep needs no confirmation runs
    assert entries[1]["reason"].startswith("keep: -0.0050 ± 0.0014 val_bpb, +3.5 SE after 2 runs")
    assert "paired with 2 runs of the tip on the same seeds" in entries[1]["reason"]
    assert entries[2]["reason"].startswith("discard: +0.0100 ")


def test_paired_runs_with_two_workers_are_refused_in_one_line_before_anything_runs(noisy, cli):
    """A candidate's runs go to several workers at once with -n > 1: paired needs one worker (the
    review found a crash, then runs judged on one pair, when it was allowed)."""
    repo = noisy
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'design = "paired"\n')
    git(repo, "commit", "-qam", "paired runs")
    simple(repo, "a", "DEPTH = 5")
    r = cli("run", "--tag", "t1", "-n", "2")
    assert r.rc == 4 and 'design = "paired" runs with one worker (-n 1)' in r.err, r
    assert "Traceback" not in r.err and not (repo / ".autoresearch" / "runs" / "t1").exists()
