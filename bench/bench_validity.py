"""How often the keep/discard verdict is right, on workloads whose noise and true effects are known.

    python bench/bench_validity.py [--sessions N] [--ideas-sessions M] [--no-tradeoff] [--frontier] [--ceiling]

Drives the verdict plugin's own ``judge()`` run by run (autoresearch/simulation.py: the loop as
the runner runs it, σ pooled as the runner pools it), so what is measured is what runs.

1. Validity, per noise model (Gaussian; Student-t 3 dof at the same σ; 10 % of runs off by ±5σ;
   σ doubling halfway; and seed-dominated noise, where pairing can pay, and a level shift of 3σ
   halfway, where re-measuring the tip must notice it), unpaired and paired:
   N sessions (default 40) of 35 null changes and 5 true 2σ steps (every eighth), printing the
   share of null changes kept, of true steps kept, of the true gain held by the final tip, and
   the runs per decision (the baseline's runs counted apart; the tip's re-measurements and
   paired runs counted in).
2. The trade-off (false keeps vs detection vs runs per decision) over noise_k and max_repeats,
   for the models where a target is out of reach with the defaults.
3. Gain per run against the by-hand rule (one run each, keep if lower than the best value so
   far) on a realistic queue: M sessions (default 40) of 40 ideas, 60 % slightly harmful
   (0.5-2σ), 25 % null, 15 % helpful (1-3σ), effects additive, so every tip's true value is known.
4. (--frontier) The rule's own knobs swept on that queue (with a one-run screen and fewer runs
   to confirm a keep): the best final gain against gain per run, and each such setting on the
   Gaussian model.
5. (--ceiling) The best any three-look rule reaches on that queue with σ known: with the tip's
   true value known, and with the tip measured by its runs (what a runner has).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch import simulation  # noqa: E402
from autoresearch.plugins.verdict import Rule, judge  # noqa: E402

NULLS, STEPS, STEP = 35, 5, 2.0  # per session; a true step is 2σ (σ 1: the rule works in units of σ)
REMEASURE = 10  # the default remeasure_every


@dataclass
class Tally:
    nulls: int = 0
    nulls_kept: int = 0
    steps: int = 0
    steps_kept: int = 0
    harmful_kept: int = 0
    gain: float = 0.0  # the true gain the final tips hold
    available: float = 0.0  # the true gain the helpful changes offered
    runs: int = 0  # candidates' runs, with the tip runs they caused
    decisions: int = 0
    baseline_runs: int = 0
    sessions: int = 0
    lost_first: int = 0  # true steps discarded at their first run
    lost_far: int = 0  # ... with a run of their own more than 3σ off in the harmful direction
    halves: list = None  # type: ignore[assignment]  # [steps, kept] before and after halfway

    def __post_init__(self) -> None:
        self.halves = [[0, 0], [0, 0]]

    def add(self, decisions, baseline_runs: int) -> None:
        self.sessions += 1
        self.baseline_runs += baseline_runs
        for i, d in enumerate(decisions):
            self.runs += d.runs
            if d.effect > 0:
                half = self.halves[2 * i >= len(decisions)]
                half[0], half[1] = half[0] + 1, half[1] + d.kept
                self.lost_first += not d.kept and d.first == 1
                self.lost_far += not d.kept and d.far > 0
            self.decisions += 1
            if d.effect == 0:
                self.nulls += 1
                self.nulls_kept += d.kept
            elif d.effect > 0:
                self.steps += 1
                self.steps_kept += d.kept
                self.available += d.effect
            self.harmful_kept += d.kept and d.effect < 0
            self.gain += d.effect if d.kept else 0.0

    def row(self) -> str:
        return (f"{self.nulls_kept / max(self.nulls, 1):10.1%} {self.steps_kept / max(self.steps, 1):10.1%} "
                f"{self.gain / max(self.available, 1e-9):10.1%} {self.runs / max(self.decisions, 1):14.2f}")


def effects() -> list[float]:
    """35 nulls and 5 true 2σ steps, every eighth."""
    return [STEP if i % 8 == 7 else 0.0 for i in range(NULLS + STEPS)]


def measure(rule: Rule, model: str, sessions: int, design: str, remeasure: int, seed: int = 20261203) -> Tally:
    rng, tally = random.Random(seed), Tally()
    make = simulation.MODELS.get(model) or simulation.EXTRA[model]
    for _ in range(sessions):
        tally.add(simulation.session(judge, rule, rng, effects(), model=make(), design=design, remeasure_every=remeasure),
                  rule.repeats)
    return tally


HEADER = f"{'nulls kept':>10s} {'steps kept':>10s} {'gain held':>10s} {'runs/decision':>14s}"


def validity(sessions: int, rule: Rule) -> dict[tuple[str, str], Tally]:
    print(f"1. validity: {sessions} sessions x ({NULLS} null changes + {STEPS} true {STEP:g}σ steps), defaults "
          f"(noise_k {rule.noise_k:g}, repeats {rule.repeats}, max_repeats {rule.max_repeats}, "
          f"remeasure_every {REMEASURE})")
    print(f"{'noise model':24s} {'design':9s} {HEADER}")
    out = {}
    for model in [*simulation.MODELS, *simulation.EXTRA]:
        for design in ("unpaired", "paired"):
            start = time.monotonic()
            t = out[(model, design)] = measure(rule, model, sessions, design, REMEASURE)
            print(f"{model:24s} {design:9s} {t.row()}   ({time.monotonic() - start:.0f}s)", flush=True)
            if design == "unpaired":
                lost = t.steps - t.steps_kept
                (a, ka), (b, kb) = t.halves
                print(f"{'':34s} steps lost {lost}: {t.lost_first} at their first run, {t.lost_far} with a run "
                      f"of their own > 3σ off the harmful way; kept {ka / max(a, 1):.0%} before halfway, "
                      f"{kb / max(b, 1):.0%} after")
    print("targets (defaults, every model): <= 2% nulls kept, >= 85% steps kept, >= 95% gain held, "
          "<= 2.5 runs/decision")
    return out


def tradeoff(sessions: int, rule: Rule, models: list[str]) -> None:
    print(f"\n2. the trade-off where a target is out of reach ({sessions} sessions each, unpaired):")
    print(f"{'noise model':24s} {'noise_k, repeats, max':>22s} {HEADER}")
    for model in models:
        for k, r, m in ((1.6, 5, 8), (2.0, 3, 5), (2.0, 5, 8), (2.0, 7, 12), (2.5, 7, 12)):
            t = measure(replace(rule, noise_k=k, repeats=r, max_repeats=m), model, sessions, "unpaired", REMEASURE)
            print(f"{model:24s} {f'{k:g}, {r}, {m}':>22s} {t.row()}", flush=True)


def ideas(rng: random.Random, n: int = 40) -> list[float]:
    """A realistic queue: improvements in σ, most slightly harmful, some null, a few helpful."""
    out = []
    for _ in range(n):
        u = rng.random()
        out.append(-rng.uniform(0.5, 2.0) if u < 0.60 else 0.0 if u < 0.85 else rng.uniform(1.0, 3.0))
    return out


def by_hand(rng: random.Random, queue: list[float], tally: Tally) -> None:
    """One run each, keep if lower than the best value so far (minimize; the baseline one run)."""
    tip_true, best = 0.0, rng.gauss(0, 1)
    decisions = []
    for effect in queue:
        true = tip_true - effect
        value = true + rng.gauss(0, 1)
        keep = value < best
        if keep:
            tip_true, best = true, value
        decisions.append(simulation.Decision(effect, keep, 1))
    tally.add(decisions, 1)


def gain_per_run(sessions: int, rule: Rule) -> None:
    print(f"\n3. gain per run on a realistic queue: {sessions} sessions x 40 ideas (60% harmful 0.5-2σ, 25% null, "
          "15% helpful 1-3σ), Gaussian noise")
    print(f"{'rule':34s} {'final gain σ':>12s} {'runs':>6s} {'gain/run':>9s} {'harmful kept':>13s} {'vs by hand':>20s}")
    rows = {}
    for name, r in (("by hand: 1 run, lower than best", None), ("defaults", rule),
                    ("defaults, paired", rule), ("defaults, no re-measuring", rule),
                    ("repeats 3, max_repeats 5", replace(rule, repeats=3, max_repeats=5)),
                    ("noise_k 1.6, repeats 3, max 3", replace(rule, noise_k=1.6, repeats=3, max_repeats=3)),
                    ("noise_k 1.6, repeats 2, max 4", replace(rule, noise_k=1.6, repeats=2, max_repeats=4))):
        rng, tally = random.Random(777), Tally()
        for _ in range(sessions):
            queue = ideas(rng)
            if r is None:
                by_hand(rng, queue, tally)
            else:
                design = "paired" if "paired" in name else "unpaired"
                every = 0 if "no re-measuring" in name else REMEASURE
                tally.add(simulation.session(judge, r, rng, queue, design=design, remeasure_every=every), r.repeats)
        rows[name] = tally
        hand = rows["by hand: 1 run, lower than best"]
        runs = tally.runs + tally.baseline_runs
        per_run = tally.gain / runs
        hand_per_run = hand.gain / (hand.runs + hand.baseline_runs)
        vs = f"{tally.gain / hand.gain:.2f}x gain, {per_run / hand_per_run:.2f}x/run"
        print(f"{name:34s} {tally.gain / sessions:12.2f} {runs / sessions:6.1f} {per_run:9.3f} "
              f"{tally.harmful_kept / sessions:13.2f} {vs:>20s}", flush=True)
    print("targets: >= 1.0x the by-hand rule's gain per run, >= 1.3x its final gain, <= 0.1 harmful keeps a session")


def frontier(sessions: int, rule: Rule) -> None:
    """The best the sequential rule's own knobs reach on the realistic queue: noise_k, the futility
    bound, a one-run screen (discard after the first run below this many standard errors; stats.
    SCREEN_AT), repeats and max_repeats, and the runs a keep needs (Rule.confirm; 0: repeats); the
    Pareto frontier of final gain against gain per run, among the settings with <= 0.1 harmful
    keeps a session, each with what it does on the Gaussian validity model."""
    import itertools

    from autoresearch import stats

    print(f"\n4. the frontier on the realistic queue ({sessions} sessions; <= 0.1 harmful keeps a session), and the "
          f"same settings on the Gaussian model ({sessions} sessions):")
    hand, rng = Tally(), random.Random(777)
    for _ in range(sessions):
        by_hand(rng, ideas(rng), hand)
    hand_per_run = hand.gain / (hand.runs + hand.baseline_runs)
    saved, points = (stats.FUTILE_AT, stats.SCREEN_AT), []
    try:
        for k, futile, screen, (r, m), confirm in itertools.product(
                (1.6, 2.0), (0.8, 1.0), (None, 0.0, 0.3), ((3, 3), (3, 5), (5, 8)), (0, 2)):
            if confirm >= r:
                continue
            stats.FUTILE_AT, stats.SCREEN_AT = futile, screen
            knobs = replace(rule, noise_k=k, repeats=r, max_repeats=m, confirm=confirm)
            tally, rng = Tally(), random.Random(777)
            for _ in range(sessions):
                tally.add(simulation.session(judge, knobs, rng, ideas(rng), remeasure_every=REMEASURE), r)
            if tally.harmful_kept / sessions <= 0.1:
                per_run = tally.gain / (tally.runs + tally.baseline_runs) / hand_per_run
                name = f"{k:g}, {futile:g}, {'-' if screen is None else f'{screen:g}'}, {r}, {m}, {confirm or r}"
                points.append((tally.gain / hand.gain, per_run, name, (tally.runs + tally.baseline_runs) / sessions,
                               (futile, screen, knobs)))
        best = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
        print(f"{'noise_k, futility, screen, r, m, confirm':>40s} {'gain':>6s} {'gain/run':>9s} {'runs':>6s}   "
              f"Gaussian: {HEADER}")
        for gain, per_run, name, runs, (futile, screen, knobs) in sorted(best, reverse=True):
            stats.FUTILE_AT, stats.SCREEN_AT = futile, screen
            g = measure(knobs, "Gaussian", sessions, "unpaired", REMEASURE)
            print(f"{name:>40s} {gain:5.2f}x {per_run:8.2f}x {runs:6.1f}   {'':9s} {g.row()}", flush=True)
    finally:
        stats.FUTILE_AT, stats.SCREEN_AT = saved
    print("target: >= 1.3x the gain at >= 1.0x the gain per run")


def ceiling(sessions: int) -> None:
    """What no rule of this kind beats: the same queue, σ known exactly (1), at most three looks
    (discard below c0, keep at k1 after one run; discard below c1, keep at k2 after two; keep at
    k3 after three), thresholds on the candidate's z against the tip, every combination of a
    small grid; once with the tip's true value known (the lead's arithmetic), once with the tip
    measured by its own runs (a keep's runs, `confirm` of them at least) as the runner must."""
    import itertools
    import math

    hand, rng = Tally(), random.Random(777)
    for _ in range(sessions):
        by_hand(rng, ideas(rng), hand)
    hand_gain, hand_per_run = hand.gain / sessions, hand.gain / (hand.runs + hand.baseline_runs)
    print(f"\n5. the ceiling on the realistic queue ({sessions} sessions; σ known; <= 0.1 harmful keeps a session; "
          "the best final gain at >= 1.0x the gain per run, and the best gain per run at >= 1.3x the gain):")

    def z(xs: list[float], ref: float, m: float) -> float:
        return (sum(xs) / len(xs) - ref) / math.sqrt(1 / len(xs) + 1 / m)

    def play(knobs, exact: bool) -> tuple[float, float, float]:
        c0, k1, c1, k2, k3, confirm, base = knobs
        rng, gain, runs, harmful = random.Random(1), 0.0, 0, 0
        for _ in range(sessions):
            tip_true, tip = 0.0, [rng.gauss(0, 1) for _ in range(base)]
            runs += base
            for effect in ideas(rng):
                ref, m = (tip_true, math.inf) if exact else (sum(tip) / len(tip), len(tip))
                xs = [tip_true + effect + rng.gauss(0, 1)]
                keep = z(xs, ref, m) >= k1
                if not keep and z(xs, ref, m) >= c0:
                    xs.append(tip_true + effect + rng.gauss(0, 1))
                    keep = z(xs, ref, m) >= k2
                    if not keep and z(xs, ref, m) >= c1:
                        xs.append(tip_true + effect + rng.gauss(0, 1))
                        keep = z(xs, ref, m) >= k3
                if keep:
                    xs += [tip_true + effect + rng.gauss(0, 1) for _ in range(confirm - len(xs))]
                    tip_true, tip = tip_true + effect, xs
                    gain, harmful = gain + effect, harmful + (effect < 0)
                runs += len(xs)
        return gain / sessions / hand_gain, gain / runs / hand_per_run, harmful / sessions

    grid = list(itertools.product((0.0, 0.3, 0.6), (1.8, 2.2, 2.6), (0.4, 0.8), (1.2, 1.6, 2.0), (0.9, 1.4, 1.8),
                                  (1, 2, 3), (2, 3)))
    print(f"{'tip':>14s} {'best gain at >= 1.0x/run':>26s} {'best gain/run at >= 1.3x gain':>31s}")
    for exact in (True, False):
        scores = [s for s in (play(knobs, exact) for knobs in grid) if s[2] <= 0.1]
        a = max((s for s in scores if s[1] >= 1.0), default=None)
        b = max((s for s in scores if s[0] >= 1.3), key=lambda s: s[1], default=None)
        show = ["none" if s is None else f"{s[0]:.2f}x gain, {s[1]:.2f}x/run" for s in (a, b)]
        print(f"{'known exactly' if exact else 'measured':>14s} {show[0]:>26s} {show[1]:>31s}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sessions", nargs="?", type=int, default=None, help="(as --sessions)")
    parser.add_argument("--sessions", dest="sessions_opt", type=int, default=40, help="sessions per cell (>= 8)")
    parser.add_argument("--ideas-sessions", type=int, default=40, help="sessions of the gain-per-run comparison")
    parser.add_argument("--no-tradeoff", action="store_true", help="skip the trade-off curve")
    parser.add_argument("--frontier", action="store_true",
                        help="also sweep the rule's knobs on the realistic queue (60 settings; a few minutes)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also the best any three-look rule with σ known reaches on that queue, with the tip's "
                             "value known and measured (a few minutes)")
    args = parser.parse_args(argv)
    sessions = args.sessions or args.sessions_opt
    rule = Rule()
    start = time.monotonic()
    results = validity(sessions, rule)
    missed = sorted({m for (m, d), t in results.items() if d == "unpaired" and m in simulation.MODELS and (
        t.nulls_kept / t.nulls > 0.02 or t.steps_kept / t.steps < 0.85 or t.gain / t.available < 0.95
        or t.runs / t.decisions > 2.5)})
    if missed and not args.no_tradeoff:
        tradeoff(max(8, sessions // 2), rule, missed)
    gain_per_run(args.ideas_sessions, rule)
    if args.frontier:
        frontier(args.ideas_sessions, rule)
    if args.ceiling:
        ceiling(args.ideas_sessions)
    print(f"\n({time.monotonic() - start:.0f}s)")


if __name__ == "__main__":
    main()
