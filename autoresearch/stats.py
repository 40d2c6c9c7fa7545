"""The noise, measured: a pooled sigma, the uncertainty of a difference of means, and the
sequential decision that keeps only what beats the noise. Pure functions, no I/O.

    sigma      pooled over every commit that ran more than once in the run:
               sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1))
    se         of the difference between a candidate's mean (n runs) and the tip's (m runs):
               sigma * sqrt(1/n + 1/m)
    z          improvement / se: how many standard errors the candidate is better by

The decision after each run of a candidate (k = noise_k, default 2; M = max_repeats):

        z >= 1.3 k                        keep: beyond the noise, however few the runs
        z <  k sigma / se - 1.0 k         discard: too far short of a k-sigma improvement to
                                          become one with more runs ("it could not matter")
        n == M                            keep if z >= 0.8 k, else discard: on the means
        otherwise                         the grey zone: run it again

SCREEN_AT (off by default, None) adds a one-run screen: after the first run, discard below that
many standard errors; bench/bench_validity.py --frontier sweeps it.

sigma is pooled robustly (outliers left out, over a window of recent runs) by autoresearch/noise.py.
Measured on simulated loops (bench/bench_validity.py: Gaussian, Student-t, wild runs, drift), this
keeps about 1 in 60 null changes and 88 % of true 2-sigma steps on Gaussian noise, at about 2.5
runs a decision (docs/noise.md has the figures for every noise model).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from autoresearch.noisefloor import FINAL_AT, KEEP_AT, floor  # noqa: F401 (stats.floor, as before)
from autoresearch.reports import MEASURED, Status, fmt, improvement, sem  # fmt: shown with a report  # noqa: F401 (stats.fmt, as before)

KEEP, DISCARD = Status.KEEP, Status.DISCARD
AGAIN = "again"  # the grey zone: a judgement, never an outcome
FUTILE_AT = 1.0  # discard when short of a k-sigma gain by more than FUTILE_AT k standard errors
SCREEN_AT: float | None = None  # after the first run: discard below this many standard errors (None: futility only)


def pooled_sigma(groups: Iterable[Sequence[float]]) -> tuple[float | None, int]:
    """(sigma, degrees of freedom) pooled over groups of repeated values; None without any repeat."""
    total = df = 0.0
    for values in groups:
        if len(values) > 1:
            mean = math.fsum(values) / len(values)
            total += math.fsum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    return (math.sqrt(total / df), int(df)) if df else (None, 0)


@dataclass(frozen=True)
class Evidence:
    """A candidate against what it is compared with, in the metric's units and in noise units."""

    improvement: float  # the candidate's mean better than the reference's, positive when better
    n: int  # the candidate's runs
    n_ref: int  # the reference's runs
    sigma: float | None  # the run-to-run noise (pooled); None when nothing ran twice yet

    @property
    def se(self) -> float | None:
        return None if self.sigma is None else self.sigma * math.sqrt(1 / self.n + 1 / self.n_ref)

    @property
    def z(self) -> float | None:
        """The improvement in standard errors: +inf or -inf on a workload without noise."""
        se = self.se
        if se is None:
            return None
        if se == 0:
            return math.copysign(math.inf, self.improvement) if self.improvement else 0.0
        return self.improvement / se


def evidence(values: Sequence[float], ref: Sequence[float], sigma: float | None, direction: str) -> Evidence:
    mean, ref_mean = math.fsum(values) / len(values), math.fsum(ref) / len(ref)
    return Evidence(improvement(mean, ref_mean, direction), len(values), len(ref), sigma)


def sequential(e: Evidence, *, k: float, max_repeats: int) -> str:
    """keep, discard, or again (the grey zone: another run), after the candidate's n-th run.

    Without a noise estimate yet (nothing has run twice) nothing is beyond the noise: a
    candidate gets a second run, and at max_repeats the sign decides.
    """
    z = e.z
    if z is None:
        if e.n >= max_repeats:
            return KEEP if e.improvement > 0 else DISCARD
        return AGAIN
    if e.n >= max_repeats:
        return KEEP if z >= FINAL_AT * k else DISCARD
    if z >= KEEP_AT * k:
        return KEEP
    if e.n == 1 and SCREEN_AT is not None and z < SCREEN_AT:
        return DISCARD
    se = e.se or 0.0
    if se and z < k * (e.sigma or 0.0) / se - FUTILE_AT * k:
        return DISCARD
    if not se:  # no noise at all: the sign decides at once
        return KEEP if e.improvement > 0 else DISCARD
    return AGAIN


AMOUNT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")


def parse_amount(value: float | int | str) -> tuple[float, bool]:
    """(number, relative): 0.001 is in the metric's units, "0.1%" a share of the reference value."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), False
    m = AMOUNT.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is neither a number nor a percentage such as \"0.1%\"")
    number = float(m.group(1))
    return (number / 100, True) if m.group(2) else (number, False)


def check_amount(value: float | int | str) -> str | None:
    """A setting's check: a number or a percentage, not negative."""
    try:
        number, _ = parse_amount(value)
    except ValueError as exc:
        return str(exc)
    return None if number >= 0 else "must not be negative"


def amount(value: float | int | str, reference: float | None) -> float:
    """An amount in the metric's units; a percentage of the reference value (0 without one)."""
    number, relative = parse_amount(value)
    return number * abs(reference or 0.0) if relative else number


def pooled_over(reports, metric: str, extra: Sequence[float] = (), window: int = 40,
                groups: Sequence[Sequence[float]] | None = None) -> tuple[float | None, int]:
    """(sigma, degrees of freedom) of `metric` pooled over the decided experiments' commits (the
    runs of one commit together, however many experiments ran it) and `extra`: outliers left out,
    over the most recent `window` degrees of freedom (autoresearch/noise.py).

    `groups`: those commits' values, already grouped as :func:`autoresearch.drift.groups` groups
    `reports` (a session keeps them, :class:`autoresearch.history.Index`), so that a decision
    need not walk the whole history; groups of one value may be left out (they count for nothing)."""
    from autoresearch import noise

    if groups is not None:
        return noise.pooled([*groups, list(extra)], window)
    from autoresearch import drift

    return noise.pooled(drift.groups(reports, metric, extra), window)


def detectable(sigma: float, k: float, repeats: int, max_repeats: int) -> float:
    """About the smallest improvement the sequential rule keeps 4 times in 5: a candidate's mean of
    `max_repeats` runs against a tip of `repeats` runs, 0.8 k standard errors plus 0.84."""
    se = sigma * math.sqrt(1 / max_repeats + 1 / repeats)
    return (FINAL_AT * k + 0.84) * se


