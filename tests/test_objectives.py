"""Objectives over several metrics, targets as goals, pruning in steps, setup crashes, tracked links.

The fake data generator prints four metrics whose values its constants set, so each hypothesis
chooses its outcome: ``yield`` (the primary, to maximize), ``dup_pct`` (to minimize; target < 5),
``diversity`` (to maximize; target >= 0.5) and ``cost``. NOISE adds a fixed pattern by seed
(0, +1, -1, +2, -2, ... times NOISE for yield, a hundredth of it for diversity), so the noise is
known in advance too.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autoresearch.objectives import (Objective, core, lexicographic_core, met_count, targets_core, unmet,
                                     weighted_core)
from autoresearch.plugins.results_tsv import read_results
from autoresearch.plugins.verdict import Rule, judge
from autoresearch.stats import AGAIN, DISCARD, FINAL_AT, KEEP, KEEP_AT, Evidence, pooled_sigma
from conftest import git, hyp, write
from test_session import run_dir

GEN = '''\
YIELD = 40.0
DUP = 11.0
DIVERSITY = 0.5
COST = 1.0
NOISE = 0.0
import os
k = [0, 1, -1, 2, -2, 0.5, -0.5, 1.5][int(os.environ.get("AUTORESEARCH_SEED", "0")) % 8]
print("---")
print(f"yield:      {YIELD + NOISE * k:.6f}")
print(f"dup_pct:    {DUP:.6f}")
print(f"diversity:  {DIVERSITY + NOISE * k / 100:.6f}")
print(f"cost:       {COST:.6f}")
'''
SETTINGS = ('metric = "yield"\ndirection = "maximize"\nrepeats = 1\n'
            '[tool.autoresearch.directions]\ndup_pct = "minimize"\n'
            '[tool.autoresearch.targets]\ndup_pct = "< 5"\ndiversity = ">= 0.5"\n')


@pytest.fixture
def gen(repo: Path) -> Path:
    """The fake data generator, yield to maximize, two targets (dup_pct < 5, unmet by the baseline;
    diversity >= 0.5, met)."""
    (repo / "train.py").write_text(GEN)
    configure(repo)
    return repo


def configure(repo: Path, top: str = "", tables: str = SETTINGS) -> None:
    """pyproject.toml: the command, `top` (plain keys), then the settings' tables; committed."""
    head, _, rest = tables.partition("[tool.autoresearch.")
    (repo / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         + top + head + (f"[tool.autoresearch.{rest}" if rest else ""))
    git(repo, "commit", "-qam", "settings")


def change(repo: Path, name: str, sets: str) -> None:
    hyp(repo, name, f'description = "{name}"\nhypothesis = "testing {name}"\n[set]\n{sets}\n')


def outcomes(repo: Path, tag: str = "t1") -> list[tuple[str, str]]:
    return [(x["description"], x["status"]) for x in read_results(repo / "results.tsv")]


def entries(repo: Path, tag: str = "t1") -> list[dict]:
    return [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]


# -------------------------------------------------------------------------------------------
# Targets are goals: a step toward an unmet one is a keep; targets_gate restores the gate


def test_a_step_toward_an_unmet_target_is_kept_and_a_lost_target_is_not(gen, cli):
    change(gen, "a_toward", "YIELD = 45.0\nDUP = 6.0")  # better yield; dup 11 -> 6, still not < 5: kept
    change(gen, "b_loses", "YIELD = 50.0\nDIVERSITY = 0.4")  # better yield, but loses the diversity target
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert outcomes(gen) == [("baseline", "keep"), ("a_toward", "keep"), ("b_loses", "discard")]
    reason = entries(gen)[2]["reason"]
    assert "misses its target: diversity 0.4 not >= 0.5" in reason, reason
    # the baseline's unmet targets: in the terminal, status and the report
    said = "targets the baseline misses (goals: a step toward one is kept): dup_pct 11 not < 5"
    assert said in r.out
    assert "targets the baseline misses: dup_pct 11 not < 5" in cli("status").out
    assert json.loads(cli("status", "--json").out)["unmet_targets"] == ["dup_pct 11 not < 5"]
    assert "Targets the baseline misses: dup_pct 11 not < 5." in cli("report").out
    # and in the header of a later session of the same run
    change(gen, "c_more", "YIELD = 46.0\nDUP = 6.0")
    r = cli("run", "--resume")
    assert r.rc == 0 and said in r.out.split("collected")[0], r


def test_targets_gate_makes_every_target_a_hard_gate(gen, cli):
    change(gen, "a_toward", "YIELD = 45.0\nDUP = 6.0")
    change(gen, "b_meets", "YIELD = 45.0\nDUP = 4.0")
    r = cli("run", "--tag", "t1", "--targets-gate")
    assert r.rc == 0, r
    assert outcomes(gen) == [("baseline", "keep"), ("a_toward", "discard"), ("b_meets", "keep")]
    assert "better, but misses its target: dup_pct 6 not < 5" in entries(gen)[1]["reason"]
    assert "targets the baseline misses (targets_gate: a keep must meet them all)" in r.out


def test_the_targets_objective_counts_targets_met_then_the_metric_decides(gen, cli):
    configure(gen, 'objective = "targets"\n')
    change(gen, "a_meets_more", "YIELD = 38.0\nDUP = 4.0")  # worse yield, but meets both targets: wins
    change(gen, "b_fewer", "YIELD = 60.0\nDUP = 4.0\nDIVERSITY = 0.3")  # far better yield, meets one of two
    change(gen, "c_as_many", "YIELD = 37.0\nDUP = 3.0")  # as many as the tip (yield 38): yield decides, worse
    change(gen, "d_as_many", "YIELD = 39.0\nDUP = 3.0")  # as many: yield better
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert outcomes(gen) == [("baseline", "keep"), ("a_meets_more", "keep"), ("b_fewer", "discard"),
                             ("c_as_many", "discard"), ("d_as_many", "keep")]
    assert "(meets 2 of 2 targets, 1 before)" in entries(gen)[1]["reason"]
    assert "(meets 1 of 2 targets, 2 before)" in entries(gen)[2]["reason"]
    assert "objective targets: more targets met wins; as many: yield (maximize)" in r.out


# -------------------------------------------------------------------------------------------
# Lexicographic and weighted, in real runs


def test_lexicographic_the_next_metric_decides_within_the_noise(gen, cli):
    configure(gen, 'objective = "lexicographic"\nmetrics = ["yield", "diversity"]\nrepeats = 5\n',
              SETTINGS.replace("repeats = 1\n", ""))
    train = (gen / "train.py").read_text().replace("NOISE = 0.0", "NOISE = 0.5")
    (gen / "train.py").write_text(train)
    git(gen, "commit", "-qam", "noise: yield sigma 0.79, diversity 0.0079")
    change(gen, "a_tie_more_diverse", "DIVERSITY = 0.6")  # yield the same: diversity decides (better)
    change(gen, "b_worse_yield", "YIELD = 30.0\nDIVERSITY = 0.9")  # yield worse beyond its noise: discarded
    change(gen, "c_more_yield_less_diverse", "YIELD = 50.0\nDIVERSITY = 0.55")  # yield better: kept
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert outcomes(gen) == [("baseline", "keep"), ("a_tie_more_diverse", "keep"), ("b_worse_yield", "discard"),
                             ("c_more_yield_less_diverse", "keep")]
    reasons = [e["reason"] for e in entries(gen)]
    assert "diversity" in reasons[1] and "(diversity: beyond the noise)" in reasons[1], reasons[1]
    assert "(yield: worse beyond the noise)" in reasons[2], reasons[2]
    assert "(yield: beyond the noise)" in reasons[3], reasons[3]
    assert "objective lexicographic: yield (maximize) > diversity (maximize)" in r.out


def test_weighted_sums_changes_in_units_of_each_metrics_scale(gen, cli):
    # no noise: each change is divided by 1% of the baseline (yield 0.4, dup_pct 0.11)
    configure(gen, 'objective = "weighted"\n', SETTINGS + '[tool.autoresearch.weights]\nyield = 1.0\ndup_pct = -0.5\n')
    change(gen, "a_less_dup", "YIELD = 39.8\nDUP = 10.0")  # -0.5 + 4.55: kept
    change(gen, "b_more_dup", "YIELD = 41.0\nDUP = 13.0")  # +2.5 - 9.1 (from the tip: yield 39.8, dup 10): discarded
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert outcomes(gen) == [("baseline", "keep"), ("a_less_dup", "keep"), ("b_more_dup", "discard")]
    assert " score" in entries(gen)[1]["reason"]
    assert "objective weighted: +1·yield/σ -0.5·dup_pct/σ (shown in yield units)" in r.out


@pytest.mark.parametrize("top, tables, said", [
    ('objective = "lexicographic"\nmetrics = ["diversity", "yield"]\n', SETTINGS,
     "metric = 'yield' must be the first of metrics (diversity, yield): set metric = 'diversity'"),
    ('objective = "lexicographic"\n', SETTINGS, 'objective = "lexicographic" needs metrics = ['),
    ('objective = "weighted"\n', SETTINGS + "[tool.autoresearch.weights]\nyield = -1.0\n",
     "weights.yield = -1 contradicts direction = 'maximize'"),
    ('objective = "weighted"\n', SETTINGS + "[tool.autoresearch.weights]\ndup_pct = -1.0\n",
     "metric = 'yield' must be one of weights (dup_pct)"),
    ("", SETTINGS.replace('dup_pct = "minimize"', 'dup_pct = "lower"'), "directions = {'dup_pct': 'lower'}"),
    ("", SETTINGS.replace('dup_pct = "minimize"', 'yield = "minimize"'),
     "directions.yield = 'minimize' contradicts direction = 'maximize'"),
    ('objective = "weighted"\n', SETTINGS + '[tool.autoresearch.weights]\nyield = "1"\n',
     "weights must be a table of numbers"),
    ('objective = "weighted"\n', SETTINGS + "[tool.autoresearch.weights]\nyield = 1.0\ncost = 0\n",
     "weights = {'yield': 1.0, 'cost': 0}: cost = 0: must be from 1e-6 to 1e6"),
    ('objective = "lexicographic"\nmetrics = ["yield", "yield"]\n', SETTINGS, "metrics = ['yield', 'yield']: names a metric twice"),
    ('objective = "lexicographic"\nmetrics = ["yield", "a b"]\n', SETTINGS, "'a b' is not a metric name"),
    ('metrics = ["yield", "diversity"]\n', SETTINGS,
     'metrics is read only by objective = "lexicographic" (objective is \'metric\')'),
])
def test_objective_settings_that_contradict_each_other_are_one_line(gen, cli, top, tables, said):
    configure(gen, top, tables)
    change(gen, "a", "YIELD = 45.0")
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and said in r.err and len(r.err.strip().splitlines()) == 1, r
    assert not (gen / ".autoresearch" / "runs").exists()


# -------------------------------------------------------------------------------------------
# Decisions on constructed cases, with noise


YIELD_BASE = (40.0, 40.5, 39.5, 41.0, 39.0)  # sigma 0.79
OBJ = Objective(kind="lexicographic", primary="yield", direction="maximize", metrics=("yield", "diversity"),
                directions={"dup_pct": "minimize"})


def lex(values: dict, ref: dict, sigmas: dict, max_repeats: int = 5) -> tuple[str, str]:
    c = lexicographic_core(values, ref, sigmas, OBJ, 2.0, max_repeats)
    return c.status, c.label


def test_lexicographic_on_constructed_cases():
    sy, sd = pooled_sigma([YIELD_BASE])[0], 0.01
    ref = {"yield": YIELD_BASE, "diversity": (0.5,) * 5}
    # yield the same in two runs (one run that equals the mean is still in the grey zone: the
    # futility bound waits for a second), diversity beyond its noise: diversity decides
    assert lex({"yield": (40.0, 40.0), "diversity": (0.6, 0.6)}, ref, {"yield": sy, "diversity": sd}) == (KEEP, "diversity")
    assert lex({"yield": (40.0, 40.0), "diversity": (0.45, 0.45)}, ref, {"yield": sy, "diversity": sd}) == (DISCARD, "diversity")
    assert lex({"yield": (30.0,), "diversity": (0.9,)}, ref, {"yield": sy, "diversity": sd}) == (DISCARD, "yield")
    assert lex({"yield": (45.0,), "diversity": (0.1,)}, ref, {"yield": sy, "diversity": sd}) == (KEEP, "yield")
    # yield a little worse, not yet beyond its noise: another run before diversity may decide
    assert lex({"yield": (39.0,), "diversity": (0.9,)}, ref, {"yield": sy, "diversity": sd}) == (AGAIN, "yield")
    # ... and at max_repeats, on the means, within the noise: diversity decides
    assert lex({"yield": (39.5,) * 5, "diversity": (0.9,) * 5}, ref, {"yield": sy, "diversity": sd}) == (KEEP, "diversity")
    # a secondary metric the candidate did not print cannot tell: the primary's verdict stands
    assert lex({"yield": (40.0, 40.0)}, ref, {"yield": sy, "diversity": sd})[0] == DISCARD


def test_weighted_on_constructed_cases():
    obj = Objective(kind="weighted", primary="yield", direction="maximize", weights={"yield": 1.0, "dup_pct": -0.5})
    ref = {"yield": YIELD_BASE, "dup_pct": (11.0, 11.2, 10.8, 11.4, 10.6)}
    sigmas = {"yield": pooled_sigma([YIELD_BASE])[0], "dup_pct": pooled_sigma([ref["dup_pct"]])[0]}
    # dup_pct down by 10 of its sigmas, yield the same: a score of +5 sigma units, beyond the noise
    c = weighted_core({"yield": (40.0,), "dup_pct": (11.0 - 10 * sigmas["dup_pct"],)}, ref, sigmas, obj, 2.0, 5)
    assert c.status == KEEP and c.e.z == pytest.approx(5 / math.sqrt(1.25) / math.sqrt(1.2))
    assert c.e.improvement == pytest.approx(5 * sigmas["yield"])  # in yield's units
    # yield up 2 sigmas, dup_pct up 4: the score is 0: not beyond the noise
    # (in two runs: one run exactly at the reference is still in the grey zone, the futility bound waits)
    c = weighted_core({"yield": (40 + 2 * sigmas["yield"],) * 2, "dup_pct": (11 + 4 * sigmas["dup_pct"],) * 2}, ref,
                      sigmas, obj, 2.0, 5)
    assert c.status == DISCARD and abs(c.e.improvement) < 1e-9


def test_targets_core_on_constructed_cases():
    obj = Objective(kind="targets", primary="yield", direction="maximize", targets={"dup_pct": "< 5", "cost": "<= 1"})
    ref = {"yield": (40.0,), "dup_pct": (11.0,), "cost": (1.0,)}
    sig = {"yield": 0.0}
    assert targets_core({"yield": (30.0,), "dup_pct": (4.0,), "cost": (1.0,)}, ref, sig, obj, 2.0, 5).status == KEEP
    assert targets_core({"yield": (50.0,), "dup_pct": (11.0,), "cost": (2.0,)}, ref, sig, obj, 2.0, 5).status == DISCARD
    assert targets_core({"yield": (41.0,), "dup_pct": (9.0,), "cost": (1.0,)}, ref, sig, obj, 2.0, 5).status == KEEP
    assert unmet(obj.targets, {"dup_pct": 11.0}, {}) == ["dup_pct 11 not < 5", "cost was not printed by the run"]


# -------------------------------------------------------------------------------------------
# Properties: one metric (one weight) is objective = "metric"; targets never keeps fewer met

RUNS = st.lists(st.integers(-40, 40).map(lambda i: 40 + i / 8), min_size=1, max_size=5)
SIGMA = st.sampled_from([None, 0.0, 0.25, 0.8, 3.0])
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def unflagged(values, base, tip, sigma) -> bool:
    """Whether the one-metric rule flags no run as an outlier (autoresearch/noise.py): the
    objectives over several metrics judge every run as it is, so only then are they the same."""
    from autoresearch import noise

    return not any(noise.flags(base, sigma)) and not any(noise.flags(tip, sigma)) and \
        not any(noise.flags(values, sigma, sum(base) / len(base), len(base)))


def near_a_bound(values, base, sigma, rule) -> bool:
    """Whether the metric's z lies within rounding of a bound the sequential rule tests."""
    from autoresearch.stats import evidence

    e = evidence(values, base, sigma, rule.direction)
    if e.z is None or not math.isfinite(e.z) or not e.se:
        return False
    k = rule.noise_k
    bounds = (KEEP_AT * k, FINAL_AT * k, k * e.sigma / e.se - FINAL_AT * k, -k, 0.0)
    return any(abs(e.z - b) < 1e-6 for b in bounds)


@PROPS
@given(values=RUNS, base=RUNS, tip=RUNS, same_tip=st.booleans(), sigma=SIGMA, net=st.integers(-5, 30),
       direction=st.sampled_from(["minimize", "maximize"]), repeats=st.integers(1, 5))
def test_lexicographic_with_one_metric_is_the_metric_objective(values, base, tip, same_tip, sigma, net, direction,
                                                                repeats):
    rule = Rule(direction=direction, repeats=repeats, max_repeats=5)
    tip = base if same_tip else tip
    assume(unflagged(values, base, tip, sigma))
    obj = Objective(kind="lexicographic", primary="m", direction=direction, metrics=("m",))
    decide = lambda vs, ref: core(obj, vs, ref, {"m": sigma}, 2.0, 5)  # noqa: E731
    one = judge(values, base, tip, sigma, net, rule)
    b = {"m": base}  # judge compares with the tip too when it is another object than the baseline
    lexi = judge({"m": values}, b, b if same_tip else {"m": tip}, None, net, rule, decide)
    assert (lexi.status, lexi.why, lexi.e) == (one.status, one.why, one.e)


@PROPS
@given(values=RUNS, base=RUNS, sigma=SIGMA, net=st.integers(-5, 30), weight=st.sampled_from([0.25, 1.0, 3.0, 7.5]),
       direction=st.sampled_from(["minimize", "maximize"]), repeats=st.integers(1, 5))
def test_weighted_with_one_weight_is_the_metric_objective(values, base, sigma, net, weight, direction, repeats):
    rule = Rule(direction=direction, repeats=repeats, max_repeats=5)
    assume(not near_a_bound(values, base, sigma, rule) and unflagged(values, base, base, sigma))
    w = weight if direction == "maximize" else -weight
    obj = Objective(kind="weighted", primary="m", direction=direction, weights={"m": w})
    decide = lambda vs, ref: core(obj, vs, ref, {"m": sigma}, 2.0, 5)  # noqa: E731
    one = judge(values, base, base, sigma, net, rule)
    b = {"m": base}
    weighted = judge({"m": values}, b, b, None, net, rule, decide)
    assert weighted.status == one.status
    assert weighted.e.improvement == pytest.approx(one.e.improvement, abs=1e-9)


@PROPS
@given(first=RUNS, first_ref=RUNS, second=RUNS, second_ref=RUNS, sigma=SIGMA, sigma2=SIGMA, net=st.integers(0, 30))
def test_lexicographic_the_first_metric_beyond_its_noise_decides_whatever_the_second(first, first_ref, second,
                                                                                    second_ref, sigma, sigma2, net):
    from autoresearch.stats import evidence, sequential

    obj = Objective(kind="lexicographic", primary="a", direction="maximize", metrics=("a", "b"))
    decide = lambda vs, ref: core(obj, vs, ref, {"a": sigma, "b": sigma2}, 2.0, 5)  # noqa: E731
    b = {"a": first_ref, "b": second_ref}
    j = judge({"a": first, "b": second}, b, b, None, net, Rule(direction="maximize", repeats=1), decide)
    e = evidence(first, first_ref, sigma, "maximize")
    if sequential(Evidence(-e.improvement, e.n, e.n_ref, e.sigma), k=2.0, max_repeats=5) == KEEP:
        assert j.status != KEEP and j.label == "a"  # worse beyond its noise: never kept
    if sequential(e, k=2.0, max_repeats=5) == KEEP:
        assert j.label == "a"  # better beyond its noise: the second metric is not read


TARGETS = {"a": "< 5", "b": ">= 0.5", "c": "<= 1"}
METRICS = st.fixed_dictionaries({m: st.lists(st.sampled_from([0.0, 0.4, 0.6, 1.0, 4.0, 6.0]), min_size=1, max_size=3)
                                 for m in ("y", "a", "b", "c")})


@PROPS
@given(values=METRICS, ref=METRICS, sigma=SIGMA, net=st.integers(-5, 30))
def test_the_targets_objective_never_keeps_a_candidate_meeting_fewer_targets(values, ref, sigma, net):
    obj = Objective(kind="targets", primary="y", direction="maximize", targets=TARGETS)
    mean = lambda vs: {m: sum(x) / len(x) for m, x in vs.items()}  # noqa: E731
    base = mean(ref)
    decide = lambda vs, r: core(obj, vs, r, {"y": sigma}, 2.0, 5, base)  # noqa: E731
    j = judge(values, ref, ref, None, net, Rule(direction="maximize", repeats=1), decide)
    if met_count(TARGETS, mean(values), base) < met_count(TARGETS, base, base):
        assert j.status != KEEP
    if met_count(TARGETS, mean(values), base) > met_count(TARGETS, base, base):
        assert j.status == KEEP


# -------------------------------------------------------------------------------------------
# Pruning in steps

STEPS_TRAIN = '''\
OFFSET = 0.0
STEPS = 16
import time
for i in range(1, STEPS + 1):
    share = i / STEPS
    loss = 3.0 * (1 - 0.5 * share) + OFFSET * share ** 0.5
    print(f"step {i} | loss {loss:.6f}", flush=True)
    time.sleep(0.1)
print("---")
print(f"val_bpb:          {loss:.6f}")
'''


def test_pruning_measures_the_share_in_steps_when_the_budget_is_in_steps(repo, cli):
    (repo / "train.py").write_text(STEPS_TRAIN)
    (repo / "pyproject.toml").write_text(
        f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\nrepeats = 1\nprune_patience = 2\n'
        "budget_steps = 16\nprune_pattern = 'step (?P<step>\\d+) \\| loss (?P<loss>[0-9.]+)'\n")
    git(repo, "commit", "-qam", "a workload that counts steps")
    change(repo, "a_worse", "OFFSET = 1.0")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    curve = (run_dir(repo) / "curves" / "000-baseline.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in curve] == [f"{i / 16:.6g}" for i in range(1, 17)]  # step / budget_steps
    worse = entries(repo)[1]
    assert worse["cause"] == "pruned" and worse["reason"].startswith("discard: pruned at "), worse["reason"]
    share = float(worse["reason"].split("pruned at ")[1].split("%")[0]) / 100
    assert 0.25 <= share < 1 and len((run_dir(repo) / "curves" / "001-a_worse.tsv").read_text().splitlines()) < 16


# -------------------------------------------------------------------------------------------
# Setup crashes: no lessons, counted apart


def test_a_crashed_baseline_is_a_setup_crash_and_teaches_no_lesson(repo, cli, monkeypatch):
    change(repo, "a", "LR = 0.02")
    monkeypatch.setenv("FAKE_FAIL", "1")  # no prepared data: the unmodified code fails
    r = cli("run", "--tag", "t1", "--pass-env", "FAKE_FAIL")
    assert r.rc == 1 and "1 setup crash in" in r.out and "1 crash" not in r.out, r
    assert cli("run", "--resume", "--pass-env", "FAKE_FAIL").rc == 1  # twice: still no rule
    monkeypatch.delenv("FAKE_FAIL")
    assert cli("run", "--resume").rc == 0
    assert outcomes(repo) == [("baseline", "crash"), ("baseline", "crash"), ("baseline", "keep"), ("a", "keep")]
    assert [e["setup_crash"] for e in entries(repo)] == [True, True, False, False]
    lessons = (repo / "experiments" / "lessons.md").read_text()
    assert "NEVER" not in lessons and "baseline" not in lessons.split("## Lessons")[-1], lessons
    journal = (repo / "experiments" / "journal.md").read_text()
    assert "The unmodified code crashed (a setup crash, no lesson): error: no prepared data" in journal
    assert "Fix the setup (data, environment, the command)" in journal and "drop the idea" not in journal
    status = cli("status").out.splitlines()[0]
    assert "2 keep, 2 setup crash" in status and "crash;" not in status.replace("setup crash;", ""), status


# -------------------------------------------------------------------------------------------
# link naming a folder git tracks

READS_DATA = '''\
LR = 0.01
from pathlib import Path
print("---")
print(f"val_bpb: {len(Path('data/readme.txt').read_text()) + len(Path('data/shards/big.bin').read_bytes()) + LR}")
'''


def test_link_on_a_tracked_folder_warns_once_and_links_its_ignored_files(repo, cli):
    (repo / "train.py").write_text(READS_DATA)
    write(repo / "data" / "readme.txt", "tracked")
    write(repo / ".gitignore", "data/shards/\n")
    (repo / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         'repeats = 1\nlink = ["data"]\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a tracked data folder, its shards ignored")
    write(repo / "data" / "shards" / "big.bin", "0123456789")
    change(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    warning = [line for line in r.err.splitlines() if "link: data is tracked by git" in line]
    assert len(warning) == 1 and "its ignored files are linked into it" in warning[0], r.err
    assert [e["metrics"]["val_bpb"] for e in entries(repo)] == [17.01, 17.02]


# -------------------------------------------------------------------------------------------
# A JSON-configured data generator with four metrics, two with targets, walked with settings only:
# init -> new --key -> --collect-only -> run, then results, report and journal, each naming the keys.

GENERATOR = '''\
import json
cfg = json.load(open("config.json"))
t, p, dedup = cfg["sampling"]["temperature"], cfg["sampling"]["top_p"], cfg["dedup"]
dup_pct = 11.0 - (5.0 if dedup else 0.0) - 10 * (t - 0.7)
diversity = 0.4 + (t - 0.7) + (p - 0.9)
yield_ = 100 - dup_pct - 40 * abs(p - 0.95)
print("generated", int(yield_), "examples")
print("---")
print(f"yield: {yield_:.4f}")
print(f"dup_pct: {dup_pct:.4f}")
print(f"diversity: {diversity:.4f}")
print(f"cost: {1.0 + t:.4f}")
'''
CONFIG = '{\n  "sampling": {\n    "temperature": 0.7,\n    "top_p": 0.9\n  },\n  "dedup": false\n}\n'


def test_a_json_configured_data_generator_with_settings_only(repo, cli):
    (repo / "train.py").unlink()
    (repo / "gen.py").write_text(GENERATOR)
    (repo / "config.json").write_text(CONFIG)
    (repo / "pyproject.toml").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a data generator")
    assert cli("init").rc == 0
    text = (repo / "pyproject.toml").read_text()
    for old, new in [('editable = ["train.py"]', 'editable = ["config.json"]'),
                     ('command = ["{python}", "train.py"]', 'command = ["{python}", "gen.py"]'),
                     ('metric = "TODO: the name of the metric your script prints, e.g. val_loss"', 'metric = "yield"'),
                     ('direction = "minimize"', 'direction = "maximize"\nrepeats = 1\nobjective = "lexicographic"\n'
                                                'metrics = ["yield", "diversity"]\n'
                                                'directions = {dup_pct = "minimize", cost = "minimize"}\n'
                                                'targets = {dup_pct = "< 5", diversity = ">= 0.5"}')]:
        assert old in text, old
        text = text.replace(old, new)
    (repo / "pyproject.toml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "autoresearch init")
    steps = [("dedup on", "dedup", "true"),  # dup_pct 11 -> 6 (target < 5), yield up: kept
             ("top_p 0.9 to 0.95", "sampling.top_p", "0.95"),  # yield up, diversity up: kept
             ("temperature 0.7 to 0.5", "sampling.temperature", "0.5")]  # more duplicates: discarded
    for description, key, value in steps:  # the config's keys as data: [keys]
        r = cli("new", description, "--key", f"{key}={value}", "--hypothesis", f"{description}: fewer duplicates")
        assert r.rc == 0, r
    r = cli("run", "--collect-only")
    assert r.rc == 0 and "3 hypotheses collected; every patch applies to config.json" in r.out, r
    assert "sampling.top_p 0.9 → 0.95" in r.out and "dedup false → true" in r.out, r.out
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    assert "objective lexicographic: yield (maximize) > diversity (maximize)" in r.out
    assert "targets the baseline misses (goals: a step toward one is kept): dup_pct 11 not < 5; diversity 0.4 " \
           "not >= 0.5" in r.out
    assert outcomes(repo) == [("baseline", "keep"), ("dedup on", "keep"), ("temperature 0.7 to 0.5", "discard"),
                              ("top_p 0.9 to 0.95", "keep")]  # in the files' order
    assert json.loads((repo / "config.json").read_text()) == {"sampling": {"temperature": 0.7, "top_p": 0.9},
                                                              "dedup": False}  # the branch has the keeps, not main
    report = cli("report").out
    assert "Targets the baseline misses: dup_pct 11 not < 5; diversity 0.4 not >= 0.5." in report
    # seed 002's per-iteration table: the reverted iteration too, arrows against the commit it built on
    assert "| dup_pct | 11 | 6 ↓↓ | 8 ↑↑ | 6 | < 5 |" in report and \
        "| diversity | 0.4 | 0.4 | 0.2 ↓↓ | 0.45 ↑ | >= 0.5 |" in report
    assert all(f"| {key} |" in report for _, key, _ in steps)  # the parameter table names every key
    journal = (repo / "experiments" / "journal.md").read_text()
    assert all(description in journal and key in journal for description, key, _ in steps)
    changed = [e["changes"] for e in map(json.loads, (run_dir(repo, "t1") / "results.jsonl").read_text().splitlines())]
    assert sorted(c[0][0] for c in changed if c) == ["dedup", "sampling.temperature", "sampling.top_p"]
    assert "targets the baseline misses: dup_pct 11 not < 5" in cli("status").out
