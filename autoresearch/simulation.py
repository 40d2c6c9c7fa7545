"""A simulated session of the verdict, run by run, as the runner applies it: the noise models
the rule is measured on (bench/bench_validity.py, ``autoresearch calibrate``), and the loop that
drives the verdict plugin's own ``judge()`` with them.

Noise models, in units of σ (each a function of the random stream, the session's progress 0..1
and the run's seed):

    gaussian    N(0, 1)
    student3    Student-t with 3 degrees of freedom, scaled to σ 1 (far tails)
    wild        N(0, 1), and 10 % of runs off by ±5 (a bad seed, a loss spike)
    doubling    N(0, 1) for the first half of the session, N(0, 2²) after (a noisier machine)
    shift       N(0, 1), every value 3 higher from halfway (a slower machine)
    seeded      80 % of the variance fixed by the seed, 20 % from run to run (seed effects)
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Callable, Sequence


def gaussian(rng: random.Random, t: float, seed: int) -> float:
    return rng.gauss(0, 1)


def student3(rng: random.Random, t: float, seed: int) -> float:
    chi2 = sum(rng.gauss(0, 1) ** 2 for _ in range(3))
    return rng.gauss(0, 1) / math.sqrt(chi2 / 3) / math.sqrt(3)


def wild(rng: random.Random, t: float, seed: int) -> float:
    return rng.gauss(0, 1) + (rng.choice((-5.0, 5.0)) if rng.random() < 0.1 else 0.0)


def doubling(rng: random.Random, t: float, seed: int) -> float:
    return rng.gauss(0, 1 if t < 0.5 else 2)


def shift(rng: random.Random, t: float, seed: int) -> float:
    return rng.gauss(0, 1) + (3.0 if t >= 0.5 else 0.0)


class Seeded:
    """80 % of the variance fixed by the seed (the same for every commit), 20 % run to run."""

    def __init__(self) -> None:
        self.effects: dict[int, float] = {}
        self.rng = random.Random(0)

    def __call__(self, rng: random.Random, t: float, seed: int) -> float:
        if seed not in self.effects:
            self.effects[seed] = rng.gauss(0, math.sqrt(0.8))
        return self.effects[seed] + rng.gauss(0, math.sqrt(0.2))


MODELS: dict[str, Callable[[], Callable[[random.Random, float, int], float]]] = {
    "Gaussian": lambda: gaussian, "Student-t 3 dof": lambda: student3, "10% off by ±5σ": lambda: wild,
    "σ doubles halfway": lambda: doubling}
#: the models beyond the four the targets are set on: where pairing can pay, and a level shift
EXTRA: dict[str, Callable[[], Callable[[random.Random, float, int], float]]] = {
    "seed-dominated (80 %)": Seeded, "level +3σ halfway": lambda: shift}


@dataclass(frozen=True)
class Decision:
    effect: float  # the candidate's true improvement
    kept: bool
    runs: int  # its runs, with the tip's runs it caused (paired, re-measured)
    outliers: int = 0  # runs flagged as outliers
    far: int = 0  # its runs whose noise drew more than 3σ in the harmful direction (known here, not to the rule)
    first: int = 0  # runs of its own it took (1: decided at its first run)


def session(judge: Callable, rule, rng: random.Random, effects: Sequence[float], sigma: float = 1.0, net_lines: int = 2,
            model: Callable[[random.Random, float, int], float] = gaussian, design: str = "unpaired",
            remeasure_every: int = 0, window: int = 40, shifts: bool = True) -> list[Decision]:
    """One session of `judge` (the verdict plugin's, with its Rule): the baseline `rule.repeats` times, then a candidate per true effect (an
    improvement, in the metric's units), each built on the tip and run until judge() decides;
    every `remeasure_every` decisions the tip runs once more (unpaired). With design "paired"
    each candidate run follows a run of the tip with the same seed, and the decision is on the
    differences. σ and the robust σ are pooled as the runner pools them (noise.pooled). A
    re-measurement runs again when it is an outlier or moved (noise.remeasure_more), and after a
    level shift the tip is compared by its runs since (noise.since_shift; `shifts` False: by all).

    One function, long: the loop as the runner runs it, in order."""
    from autoresearch import noise
    from autoresearch.reports import sign
    from autoresearch.stats import AGAIN, KEEP

    better, progress = sign(rule.direction), [0.0]

    def run(true: float, seed: int) -> float:
        return true + sigma * model(rng, progress[0], seed)

    tip_true = 0.0
    tip = [run(tip_true, s) for s in range(rule.repeats)]
    measured = [list(tip)]  # the tip's first runs, then each re-measurement's
    groups: list[list[float]] = [tip]  # every commit's runs, in order of first appearance
    diffs: list[list[float]] = []  # paired: each candidate's differences
    out, since = [], 0
    for i, effect in enumerate(effects):
        progress[0] = i / len(effects)
        extra = 0
        if design != "paired" and remeasure_every and since >= remeasure_every:
            latest = [run(tip_true, len(tip))]  # as the runner: one run, more when it is an outlier or moved
            scale = noise.robust_sigma(groups)
            est, _ = noise.pooled(groups, window, scale)
            ref = noise.since_shift(measured, est) if shifts else tip
            while noise.remeasure_more(ref, latest, est, scale, rule.repeats):
                latest.append(run(tip_true, len(tip) + len(latest)))
            extra, since = extra + len(latest), 0
            tip.extend(latest)  # the tip's runs, σ's pool
            measured.append(latest)
        scale = noise.robust_sigma(groups)
        ref = tuple(noise.since_shift(measured, noise.pooled(groups, window, scale)[0]) if shifts else tip)
        true = tip_true + better * effect
        values: list[float] = []
        mine: list[float] = []
        groups.append(values)
        while True:
            seed = len(values)
            if design == "paired":
                fresh = run(tip_true, seed)
                tip.append(fresh)
                extra += 1
            values.append(run(true, seed))
            scale = noise.robust_sigma(groups)
            est, _ = noise.pooled(groups, window, scale)
            paired = None
            if design == "paired":
                mine.append(better * (values[-1] - fresh))
                est, scale = noise.paired_sigma([*diffs, mine], est, scale, window)
                paired = tuple(mine)
            j = judge(tuple(values), ref, ref, est, net_lines, rule, scale=scale, paired=paired)
            if j.status != AGAIN:
                break
            if len(values) >= rule.max_repeats:  # as make_verdict: on the means
                j = judge(tuple(values), ref, ref, est, net_lines,
                          replace(rule, repeats=len(values), max_repeats=len(values)), scale=scale, paired=paired)
                break
        if design == "paired":
            diffs.append(mine)
        far = sum(better * (v - true) < -3 * sigma for v in values)
        out.append(Decision(effect, j.status == KEEP, len(values) + extra, len(j.outliers), far, len(values)))
        since += 1
        if j.status == KEEP:
            tip_true, tip, measured = true, values, [list(values)]
    return out
