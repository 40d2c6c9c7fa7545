"""Noise that is not Gaussian: a wild run, a machine whose level moves, and runs paired by seed.

The estimates on chosen values, properties of them (hypothesis), and real runs of the fake
workload whose value moves with AUTORESEARCH_SEED by a fixed pattern (tests/test_verdict.py's),
with a wild run or a level shift added, so every outcome is known in advance.
"""
from __future__ import annotations

import json
import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoresearch import noise, simulation
from autoresearch.plugins.verdict import Rule, judge
from autoresearch.stats import AGAIN, KEEP, pooled_sigma
from conftest import git, simple
from test_session import run_dir
from test_verdict import NOISY

BASE = (1.220, 1.221, 1.219, 1.222, 1.218)
SIGMA = pooled_sigma([BASE])[0]


def test_without_an_outlier_sigma_and_means_are_the_classical_ones():
    groups = [list(BASE), [1.1, 1.102, 1.099], [1.3, 1.301]]
    assert noise.pooled(groups) == pytest.approx(pooled_sigma(groups))
    assert noise.location(BASE, SIGMA) == pytest.approx(sum(BASE) / 5)


def test_one_wild_run_is_flagged_and_barely_moves_sigma():
    wild = (1.220, 1.221, 1.219, 1.272, 1.218)
    scale = noise.robust_sigma([wild])
    assert noise.flags(wild, scale) == (False, False, False, True, False)
    sigma, df = noise.pooled([wild])
    assert df == 3 and sigma == pytest.approx(pooled_sigma([(1.220, 1.221, 1.219, 1.218)])[0])
    assert pooled_sigma([wild])[0] > 10 * sigma  # the classical σ: inflated twentyfold


def test_a_keep_resting_on_one_far_run_waits_for_one_more():
    j = judge((1.200,), BASE, BASE, SIGMA, 0, Rule(repeats=1))  # 12 σ better in one run
    assert (j.status, j.outliers) == (AGAIN, (0,)) and "outlier" in j.why
    j = judge((1.200, 1.201), BASE, BASE, SIGMA, 0, Rule(repeats=1))  # two far runs that agree: real
    assert (j.status, j.outliers) == (KEEP, ())
    j = judge((1.200, 1.2195), BASE, BASE, SIGMA, 0, Rule(repeats=1))  # the next run says it was wild
    assert j.status != KEEP and j.outliers == (0,)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=12), st.floats(20, 1e6), st.integers(0, 11))
def test_property_one_wild_run_moves_robust_sigma_little(values, wild, at):
    """Replacing any one run of a commit by a value as wild as you like moves the robust σ by a
    bounded factor (the median of the others' distances), where the classical σ follows it."""
    clean = noise.robust_sigma([values])
    spoiled = list(values)
    spoiled[at % len(values)] = wild
    moved = noise.robust_sigma([spoiled])
    assert moved is not None and clean is not None
    spread = max(values) - min(values)
    assert moved <= 3 * max(clean, spread / 2) + 1e-9


def test_level_shift_and_sigma_change():
    assert noise.level_shift(BASE, (1.2201,), SIGMA) == 0.0
    assert noise.level_shift(BASE, (1.240, 1.241), SIGMA) == pytest.approx(1.2405 - 1.22)
    rng = random.Random(1)
    before = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(30)]
    after = [[rng.gauss(0, 3) for _ in range(3)] for _ in range(20)]
    _, _, noisier, quieter = noise.sigma_change(before + after, window=40)
    assert noisier and not quieter
    assert not any(noise.sigma_change(before, window=20)[2:])


def test_tail_shape_tells_far_tails_from_gaussian():
    rng = random.Random(3)
    gauss = [rng.gauss(0, 1) for _ in range(40)]
    wild = gauss[:-1] + [8.0]
    k_g, largest_g, expected = noise.tail_shape(gauss)
    k_w, largest_w, _ = noise.tail_shape(wild)
    assert abs(k_g) < 1.5 and largest_g < expected + 1 and k_w > 5 and largest_w > expected + 2


def test_paired_runs_give_the_same_seeds_to_candidate_and_tip():
    """Simulated with seed effects that dominate: the pairs share their seed, so the differences
    cancel them (as seen in the tip's runs: one per candidate run, at the candidate run's seed)."""
    seen: list[tuple[str, int]] = []
    model = simulation.Seeded()

    def spy(rng, t, seed):
        seen.append(("run", seed))
        return model(rng, t, seed)

    simulation.session(judge, Rule(), random.Random(5), [0.0, 2.0], model=spy, design="paired")
    pairs = seen[Rule().repeats:]  # after the baseline: tip, candidate, tip, candidate, ...
    assert len(pairs) % 2 == 0 and pairs[0::2] == pairs[1::2]


WILD = ('print("---")', 'val += 0.05 if os.environ.get("AUTORESEARCH_SEED") == "3" else 0.0\nprint("---")')


@pytest.fixture
def noisy(repo):
    train = (repo / "train.py").read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.001").replace(*NOISY)
    (repo / "train.py").write_text(train)
    git(repo, "commit", "-qam", "a noisy workload")
    return repo


def entries(repo, tag="t1"):
    return [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]


def test_a_single_wild_baseline_run_does_not_make_every_verdict_inconclusive(noisy, cli):
    repo = noisy
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(*WILD))  # seed 3: 0.05 off (30 σ)
    git(repo, "commit", "-qam", "every run with seed 3 is wild")
    simple(repo, "a", "LR = 0.0105")   # 0.005 better: about 3 σ
    simple(repo, "b", "LR = 0.0095")   # 0.005 worse
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    got = entries(repo)  # a: one run more than `repeats`, for the one left out
    assert [(e["name"], e["status"], e["n"]) for e in got] == [("baseline", "keep", 5), ("a", "keep", 6),
                                                               ("b", "discard", 1)]
    assert got[0]["outliers"] == [3] and got[1]["outliers"] == [3]  # kept in the data, flagged
    assert got[0]["values"][3] == pytest.approx(1.272)
    assert "run 4 flagged as an outlier, left out" in got[1]["reason"]
    assert "(beyond the noise" in got[1]["reason"] and "(worse beyond the noise" in got[2]["reason"]
    assert got[1]["sigma"] < 0.002  # σ of the ordinary runs, not the wild one's 0.02


SHIFT = ('print("---")', 'import pathlib\n_c = pathlib.Path(COUNTER)\n'
         '_n = int(_c.read_text()) if _c.exists() else 0\n_c.write_text(str(_n + 1))\n'
         'val += 0.02 if _n >= 10 else 0.0\nprint("---")')


def test_a_level_shift_mid_session_is_detected_and_reported(noisy, cli, tmp_path):
    """From the 11th run on, every run is 0.02 higher (12 σ): a slower machine. The tip is
    re-measured every 2 decisions; the re-measurement after the shift runs until it has `repeats`
    runs (its first an outlier, then off the tip's level), status and the summary say the level
    moved, and the next candidate is compared with the tip as re-measured. (The sandbox is off:
    the runs count themselves in a file outside their folder.)"""
    repo = noisy
    counter = f"COUNTER = {str(tmp_path / 'runs-so-far')!r}\n"
    (repo / "train.py").write_text(counter + (repo / "train.py").read_text().replace(*SHIFT))
    git(repo, "commit", "-qam", "the machine slows down after 10 runs")
    for i in range(5):
        simple(repo, f"h{i}", f"DEPTH = {5 + i}")  # each clearly worse: one run, discarded
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + 'remeasure_every = 2\nsandbox = "off"\n')
    git(repo, "commit", "-qam", "re-measure the tip every 2 decisions")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    got = entries(repo)
    remeasured = [e for e in got if e["description"] == "the tip, re-measured"]
    assert [e["n"] for e in remeasured] == [1, 5]
    assert remeasured[1]["values"][0] > 1.235 and remeasured[0]["values"][0] < 1.225
    assert re.search(r"the level moved by \+0\.020\d* beyond the noise: candidates are compared with these runs",
                     remeasured[1]["reason"])
    last = got[-1]  # DEPTH 9: 0.05 worse than the tip at today's level (0.07 against its runs before the shift)
    assert last["name"] == "h4" and re.match(r"discard: \+0\.0(49|50)", last["reason"]), last["reason"]
    assert re.search(r"drift: the tip's level moved by \+0\.0(19|2)\d* val_bpb at \d\d:\d\d \(re-measured\)", r.out)
    status = cli("status")
    assert re.search(r"drift: the tip's level moved by \+0\.0(19|2)", status.out)


def test_calibrate_reports_the_tail_shape_and_recommends(noisy, cli):
    repo = noisy
    r = cli("calibrate", "--runs", "5")
    assert r.rc == 0, r
    assert "tails: excess kurtosis" in r.out and "recommended: design unpaired with the defaults" in r.out
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(*WILD))
    git(repo, "commit", "-qam", "every run with seed 3 is wild")
    r = cli("calibrate", "--runs", "5")
    assert "run 4 beyond 3 robust σ" in r.out and "with the robust estimates" in r.out


def test_the_header_says_which_estimates_are_in_use(noisy, cli):
    simple(noisy, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert "noise: robust (outliers beyond 3 robust σ flagged" in r.out and "design unpaired" in r.out
    assert "the tip re-measured every 10 decisions" in r.out


def test_the_report_shows_the_outliers_and_the_drift(noisy, cli):
    repo = noisy
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(*WILD))
    git(repo, "commit", "-qam", "every run with seed 3 is wild")
    simple(repo, "a", "LR = 0.0105")
    assert cli("run", "--tag", "t1").rc == 0
    r = cli("report")
    assert r.rc == 0, r
    rows = [x for x in r.out.splitlines() if x.startswith(("| 0 | baseline", "| 1 | a")) and "(n=" in x]  # the metrics table
    assert len(rows) == 2 and all("(1 outlier, left out of the verdict)" in x for x in rows), rows
    data = json.loads(cli("report", "--json").out)
    assert [e["outliers"] for e in data["experiments"]] == [[3], [3]]


def test_sigma_of_a_difference_is_a_runs_times_root_two_until_the_pairs_have_four_degrees_of_freedom():
    assert noise.paired_sigma([[0.5, 0.7]], 1.0, 0.9) == (pytest.approx(math.sqrt(2)), pytest.approx(0.9 * math.sqrt(2)))
    assert noise.paired_sigma([[0.5]], None, None) == (None, None)
    diffs = [[0.5, 0.7, 0.6], [0.1, 0.3, 0.2]]  # 4 degrees of freedom: their own σ
    sd, _ = noise.paired_sigma(diffs, 1.0, 1.0)
    assert sd == pytest.approx(pooled_sigma(diffs)[0]) and sd == pytest.approx(0.1)


@given(st.lists(st.tuples(st.integers(0, 9), st.floats(-5, 5), st.booleans(), st.booleans()), max_size=8))
@settings(max_examples=60, deadline=None)
def test_pairs_are_matched_by_seed_whatever_the_order_and_a_crash_leaves_its_pair_out(pairs):
    from types import SimpleNamespace

    from autoresearch.pairing import differences
    from autoresearch.reports import RunResult

    seeds = list(dict.fromkeys(seed for seed, *_ in pairs))
    rows = {seed: row for seed, *row in pairs}
    runs = [RunResult(0, 1.0, "", seed=s, metrics={"m": 1.0 + rows[s][0]}, cause="" if rows[s][1] else "crash")
            for s in seeds]
    tips = [RunResult(0, 1.0, "", seed=s, metrics={"m": 1.0}, cause="" if rows[s][2] else "crash")
            for s in reversed(seeds)]  # the tip's runs in another order (parallel workers)
    got = differences(SimpleNamespace(paired=tips + [None]), runs, "m", "minimize")
    want = tuple(-rows[s][0] for s in seeds if rows[s][1] and rows[s][2])
    assert got == pytest.approx(want)
