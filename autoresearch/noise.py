"""Noise that is not Gaussian: wild runs, a machine that drifts, and runs paired by seed. Pure
functions, no I/O; the verdict plugin and the status / report commands call them.

    outliers     a run far outside the others: beyond OUTLIER robust σ of the median of its
                 commit's other runs (3 runs or more), or, for a commit's first two runs, of the
                 reference it is compared with. Kept in the data and flagged; it is left out of
                 the means and of σ, and a decision that would rest on it waits for one more run.
    robust σ     the median distance of a run from its commit's median, made σ for Gaussian runs
                 (1.4826 × MAD, corrected for a few runs): what flags an outlier (one wild run
                 moves a median, not a mean of squares).
    σ            the pooled standard deviation of every repeated commit's runs, outliers left
                 out (a commit's two runs further than PAIR robust σ × √2 apart left out of it),
                 over the last ``window`` degrees of freedom (recent runs: the noise now).
                 On data without an outlier and a session shorter than the window it is the
                 classical pooled σ, to the last digit.
    drift        σ now (the window) against σ before it, and the tip's latest re-measurements
                 against its earlier runs: a change beyond the noise is reported.
    paired       a candidate's run and the tip's run with the same seed, decided on their
                 differences (judge(paired=...); autoresearch/pairing.py runs them): σ of a
                 difference pooled over the session's paired candidates, σ × √2 before
                 PAIRED_DF degrees of freedom.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

OUTLIER = 3.0  # a run this many robust σ from the others is an outlier
PAIR = 2.5  # two runs of a commit this many robust σ × √2 apart: one is wild (which one cannot be told)
WINDOW = 40  # degrees of freedom σ is pooled over, the most recent first
SHIFT_AT = 3.0
MOVED = 2.0  # a re-measurement this many standard errors off the tip's earlier runs: it runs again, to tell
PAIRED_DF = 4  # σ of a difference from the differences once they have this many degrees of freedom  # a level shift or a change of σ: this many standard errors


#: the median |run - its commit's median| of n Gaussian runs of σ 1 (the zero of an odd n left out)
MEDIAN_RESIDUAL = {2: 0.477, 3: 0.691, 4: 0.488, 5: 0.681, 6: 0.531, 7: 0.686, 8: 0.561, 9: 0.681, 10: 0.591,
                   11: 0.683, 12: 0.61}


def robust_sigma(groups: Sequence[Sequence[float]]) -> float | None:
    """σ that a wild run barely moves: the median, over every repeated commit, of each run's
    distance from its commit's median, in units of what Gaussian runs of σ 1 give
    (MEDIAN_RESIDUAL; the 1.4826 × MAD rule, corrected for a few runs). None without a repeat."""
    scaled = []
    for g in groups:
        n = len(g)
        if n < 2:
            continue
        mid = statistics.median(g)
        residuals = sorted(abs(v - mid) for v in g)[n % 2:]
        factor = MEDIAN_RESIDUAL.get(n, 0.6745 * math.sqrt((n - 1) / n))
        scaled += [r / factor for r in residuals]
    return statistics.median(scaled) if scaled else None


def flags(values: Sequence[float], scale: float | None, ref: float | None = None, n_ref: int = 0) -> tuple[bool, ...]:
    """Which runs are outliers. With 3 runs or more: beyond OUTLIER × scale of the median of the
    others. With 1 or 2: beyond OUTLIER × scale × √(1 + 1/n_ref) of `ref` (the mean it is compared
    with), unless both of two runs are far and agree with each other (a large, real effect)."""
    n = len(values)
    if not scale or n == 0:
        return (False,) * n
    if n >= 3:
        return tuple(abs(v - statistics.median(values[:i] + values[i + 1:])) > OUTLIER * scale
                     for i, v in enumerate(values))
    if ref is None:
        return (False,) * n
    far = tuple(abs(v - ref) > OUTLIER * scale * math.sqrt(1 + 1 / max(n_ref, 1)) for v in values)
    if n == 2 and all(far) and abs(values[0] - values[1]) <= OUTLIER * scale:
        return (False, False)
    return far


def kept(values: Sequence[float], flagged: Sequence[bool]) -> tuple[float, ...]:
    """The values that are not outliers (all of them when every one is flagged)."""
    out = tuple(v for v, f in zip(values, flagged) if not f)
    return out or tuple(values)


def location(values: Sequence[float], scale: float | None) -> float:
    """The mean of the runs that are not outliers among themselves."""
    clean = kept(values, flags(values, scale))
    return math.fsum(clean) / len(clean)


def pooled(groups: Sequence[Sequence[float]], window: int = WINDOW,
           scale: float | None = None) -> tuple[float | None, int]:
    """(σ, degrees of freedom): the pooled standard deviation over the most recent `window`
    degrees of freedom (groups in time order, the last one newest), outliers left out."""
    scale = robust_sigma(groups) if scale is None else scale
    total, df = 0.0, 0
    for values in reversed(groups):
        if len(values) == 2 and scale and abs(values[0] - values[1]) > PAIR * scale * math.sqrt(2):
            continue  # two runs far apart: one is wild, and which one cannot be told
        clean = kept(values, flags(values, scale))
        if len(clean) > 1:
            mean = math.fsum(clean) / len(clean)
            total += math.fsum((v - mean) ** 2 for v in clean)
            df += len(clean) - 1
        if window and df >= window:
            break
    return (math.sqrt(total / df), df) if df else (None, 0)


def paired_sigma(diffs: Sequence[Sequence[float]], sigma: float | None, scale: float | None,
                 window: int = WINDOW) -> tuple[float | None, float | None]:
    """(σ of a difference, its robust σ): pooled over each paired candidate's differences (the
    current one last) once they have PAIRED_DF degrees of freedom; until then a run's σ × √2 (the
    variance of a difference when the pair shares nothing)."""
    scale_d = robust_sigma(diffs)
    sd, df = pooled(diffs, window, scale_d)
    if df >= PAIRED_DF:
        return sd, scale_d
    return (None if sigma is None else sigma * math.sqrt(2)), (None if scale is None else scale * math.sqrt(2))


@dataclass(frozen=True)
class Drift:
    """What changed in the noise as the session went: σ, and the tip's level."""

    sigma_before: float | None = None
    sigma_now: float | None = None
    level_shift: float = 0.0  # the tip's latest runs minus its earlier ones (0: none beyond the noise)
    noisier: bool = False
    quieter: bool = False

    @property
    def changed(self) -> bool:
        return self.noisier or self.quieter or bool(self.level_shift)

    def line(self, metric: str, when: str = "") -> str:
        """The change in one short line ("" when nothing changed beyond the noise)."""
        parts = []
        if self.noisier or self.quieter:
            parts.append(f"the machine got {'noisier' if self.noisier else 'quieter'}{when}: σ {self.sigma_before:.2g} "
                         f"-> {self.sigma_now:.2g} {metric}")
        if self.level_shift:
            parts.append(f"the tip's level moved by {self.level_shift:+.3g} {metric}{when} (re-measured)")
        return "drift: " + "; ".join(parts) if parts else ""


def sigma_change(groups: Sequence[Sequence[float]], window: int = WINDOW) -> tuple[float | None, float | None, bool, bool]:
    """(σ before, σ now, noisier, quieter): σ over the last `window` degrees of freedom against σ
    over everything before it; a change beyond SHIFT_AT standard errors of log σ (√(1/2df) each)."""
    scale = robust_sigma(groups)
    now, df_now = pooled(groups, window, scale)
    cut, df = len(groups), 0
    for i in range(len(groups) - 1, -1, -1):  # where the window starts
        df += max(len(groups[i]) - 1, 0)
        cut = i
        if df >= window:
            break
    before, df_before = pooled(groups[:cut], 0, scale)
    if not now or not before or df_now < 8 or df_before < 8:
        return before, now, False, False
    z = math.log(now / before) / math.sqrt(1 / (2 * df_now) + 1 / (2 * df_before))
    return before, now, z > SHIFT_AT, z < -SHIFT_AT


def level_shift(earlier: Sequence[float], latest: Sequence[float], sigma: float | None) -> float:
    """The latest re-measurements' mean minus the earlier runs' (outliers left out), when beyond
    SHIFT_AT standard errors; 0.0 otherwise (or without a σ)."""
    if not sigma or not earlier or not latest:
        return 0.0
    a, b = location(earlier, sigma), location(latest, sigma)
    se = sigma * math.sqrt(1 / len(earlier) + 1 / len(latest))
    return b - a if abs(b - a) > SHIFT_AT * se else 0.0


def remeasure_more(earlier: Sequence[float], latest: Sequence[float], sigma: float | None, scale: float | None,
                   repeats: int) -> bool:
    """Whether a re-measurement of the tip runs once more: its one run an outlier against the
    tip's earlier runs (one more run: the second decides nothing by itself), or its runs so far
    more than MOVED standard errors off them (the machine's level may have moved: up to `repeats`
    runs, to tell, and then to measure the new level as well as a baseline)."""
    if not earlier or not latest or not scale:
        return False
    ref = location(earlier, scale)
    if len(latest) == 1 and abs(latest[0] - ref) > OUTLIER * scale * math.sqrt(1 + 1 / len(earlier)):
        return True
    if len(latest) >= repeats or not sigma:
        return False
    return abs(location(latest, scale) - ref) > MOVED * sigma * math.sqrt(1 / len(earlier) + 1 / len(latest))


def since_shift(measurements: Sequence[Sequence[float]], sigma: float | None) -> list[float]:
    """The tip's runs it is compared by: its measurements in order (its first runs, then each
    re-measurement), from the last one whose level moved beyond the noise (level_shift) on."""
    current: list[float] = []
    for runs in measurements:
        current = list(runs) if current and runs and level_shift(current, runs, sigma) else current + list(runs)
    return current


def tail_shape(values: Sequence[float]) -> tuple[float, float, float]:
    """(excess kurtosis, the largest deviation from the mean in σ, what a Gaussian sample of that
    size gives on average): a far tail shows as kurtosis above 0 and a largest deviation above
    the Gaussian expectation."""
    n = len(values)
    mean = math.fsum(values) / n
    m2 = math.fsum((v - mean) ** 2 for v in values) / n
    m4 = math.fsum((v - mean) ** 4 for v in values) / n
    kurtosis = m4 / m2 ** 2 - 3 if m2 else 0.0
    sd = math.sqrt(m2 * n / (n - 1)) if n > 1 and m2 else 0.0
    largest = max(abs(v - mean) for v in values) / sd if sd else 0.0
    return kurtosis, largest, expected_largest(n)


def expected_largest(n: int) -> float:
    """About the largest |deviation| in σ a Gaussian sample of n gives: the 1 - 1/(2n) quantile
    (Blom), 0.8 for 2 runs, 1.4 for 5, 2.0 for 20."""
    if n < 2:
        return 0.0
    p = 1 - 0.5 / n * (1 - 0.375 / n)
    return statistics.NormalDist().inv_cdf(p) * math.sqrt((n - 1) / n)
