"""How often the keep/discard verdict is right, on a workload whose noise and true effects are known.

    python bench/bench_validity.py [SESSIONS]      (default 60 sessions; about 10 s)

A simulated research loop: the metric (val_bpb, minimized) of a run is its commit's true value
plus Gaussian noise (sigma 0.0007, about what one run against one run turns into a 1-in-6 keep
of null changes under the old 0.001 threshold). Each session runs the baseline, then 50
candidates built on the branch tip: 40 null changes (true effect 0) with 10 real improvements of
2 sigma interleaved (every fifth). Each rule decides with the same random draws' distribution;
the default rule is the verdict plugin's own `judge()` (plugins/verdict.py), so what is measured
is what runs.

Printed per rule: the share of null changes kept, of real improvements kept, of the available
true gain the final branch tip holds, and the workload runs per decision (the baseline's runs
counted apart).
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch.plugins.verdict import Rule, simulate  # noqa: E402

SIGMA = 0.0007
EFFECT = 2 * SIGMA  # a real improvement
NULLS, REALS = 40, 10
NET_LINES = 2  # a small patch: the simplicity criterion does not decide


@dataclass
class Tally:
    nulls: int = 0
    nulls_kept: int = 0
    reals: int = 0
    reals_kept: int = 0
    gain: float = 0.0  # true gain held by the final tips
    available: float = 0.0  # true gain the real improvements offered
    runs: int = 0  # candidates' runs
    decisions: int = 0
    baseline_runs: int = 0


def candidates() -> list[float]:
    """The true effects in session order: every fifth a real improvement (minimize: negative)."""
    return [-EFFECT if (i % 5) == 4 else 0.0 for i in range(NULLS + REALS)]


def old_rule(rng: random.Random, tally: Tally, fresh_tip: bool = False) -> None:
    """One run against one run, fixed thresholds in the metric's units (0.005 / 0.001, +2 lines).

    As it ran, the tip's value is the one run that made it the tip: its luckiest, so after a
    lucky keep little else is kept. `fresh_tip` compares each candidate with a new run of the
    tip instead: one decision's odds, without that winner's curse."""
    tip_true = 1.0
    tip_value = tip_true + rng.gauss(0, SIGMA)
    tally.baseline_runs += 1
    for effect in candidates():
        true = tip_true + effect
        if fresh_tip:
            tip_value = tip_true + rng.gauss(0, SIGMA)
        value = true + rng.gauss(0, SIGMA)
        keep = tip_value - value > 0.001  # the old min_improvement; a 2-line patch is under max_added_lines
        tally.runs += 1
        tally.decisions += 1
        count(tally, effect, keep)
        if keep:
            tip_true, tip_value = true, value  # the tip's value: its one (lucky) run
    tally.gain += 1.0 - tip_true
    tally.available += REALS * EFFECT


def new_rule(rng: random.Random, tally: Tally, rule: Rule) -> None:
    """The verdict plugin's own rule, as the runner applies it (verdict.simulate: judge() run by run)."""
    tally.baseline_runs += rule.repeats
    tip_true = 1.0
    for effect, kept, runs in simulate(rule, rng, [-e for e in candidates()], SIGMA, NET_LINES):
        tally.runs += runs
        tally.decisions += 1
        count(tally, -effect, kept)
        if kept:
            tip_true -= effect
    tally.gain += 1.0 - tip_true
    tally.available += REALS * EFFECT


def count(tally: Tally, effect: float, keep: bool) -> None:
    if effect == 0:
        tally.nulls += 1
        tally.nulls_kept += keep
    else:
        tally.reals += 1
        tally.reals_kept += keep


def main(sessions: int | None = None) -> dict[str, Tally]:
    if sessions is None:
        sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    rules: dict[str, Rule | str] = {
        "old: 1 run vs the tip's 1 run, 0.001": "old",
        "old, with a fresh tip run each time": "fresh",
        "default: noise_k 2, repeats 5, max 5": Rule(),
        "repeats 4, max_repeats 5": Rule(repeats=4, max_repeats=5),
        "repeats 3, max_repeats 3": Rule(repeats=3, max_repeats=3),
        "noise_k 2.5, repeats 5, max 6": Rule(noise_k=2.5, repeats=5, max_repeats=6),
    }
    results: dict[str, Tally] = {}  # by rule
    for name, rule in rules.items():
        tally = Tally()
        rng = random.Random(20261122)  # the same sessions for every rule's seed stream
        for _ in range(sessions):
            if isinstance(rule, Rule):
                new_rule(rng, tally, rule)
            else:
                old_rule(rng, tally, fresh_tip=rule == "fresh")
        results[name] = tally
    print(f"verdict validity: {sessions} sessions x ({NULLS} null changes + {REALS} real improvements of 2 sigma), "
          f"sigma {SIGMA}")
    print(f"{'rule':40s} {'nulls kept':>10s} {'reals kept':>10s} {'gain held':>10s} {'runs/decision':>14s} "
          f"{'baseline runs':>14s}")
    for name, t in results.items():
        print(f"{name:40s} {t.nulls_kept / t.nulls:10.1%} {t.reals_kept / t.reals:10.1%} "
              f"{t.gain / t.available:10.1%} {t.runs / t.decisions:14.2f} {t.baseline_runs / sessions:14.0f}")
    print("targets for the default: <= 2% nulls kept, >= 90% reals kept, >= 95% gain held, <= 2.0 runs/decision")
    return results


if __name__ == "__main__":
    main()
