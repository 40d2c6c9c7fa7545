"""Distilled lessons (seed 001): the run's results grouped by what they are about, one line each.

A lesson is about one subject: a parameter moved one way (``LR ↑``), a parameter set to one value
(``ACT → silu``), several moved together, or a kind of code change (``replace``/``diff`` patches
that remove lines, add lines, or rewrite as many as they remove). Every experiment on that subject
is its evidence, merged into the one line as the run goes on:

    LR ↑ from 0.01, 0.02: worse (3 tries, 7 runs, val_bpb +0.012 ± 0.004; 3 beyond the noise; kept 0)

The effect is the mean change of the metric over the tries (signed as the metric moved), ± its
standard error: from the spread of the tries when there are three or more (and never below what
their run-to-run noise gives), else from the noise each try was decided against. It is "better" or
"worse" when it stands beyond ``noise_k`` standard errors, else "no effect beyond the noise".
Drawn from the reports (the ledger), as :mod:`autoresearch.rules` draws the ALWAYS/NEVER rules:
lessons.md writes them, ``status`` and ``report`` read them from here, never out of the prose.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

from autoresearch.reports import Cause, Report, Status, results, sign
from autoresearch.rules import crash_kind

BETTER, WORSE, NEUTRAL, CRASHES = "better", "worse", "no effect beyond the noise", "crashes"


def _num(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def code_kind(r: Report) -> str | None:
    """What kind of code change a report's replace/diff patches are, or None for set changes only."""
    kinds = [k for k in r.patch_kinds if k != "set"]
    if not kinds:
        return None
    net = r.lines_added - r.lines_removed
    what = "remove lines" if net < 0 else "add lines" if net > 0 else "rewrite lines (as many added as removed)"
    return f"code changes ({'/'.join(sorted(set(kinds)))}) that {what}"


def subject_of(r: Report) -> tuple[tuple[str, str], ...]:
    """The grouping key: each changed parameter with its direction (↑, ↓) or new value (→ v), and
    the code change's kind; the same key for every experiment about the same thing."""
    key = []
    for name, old, new in r.changes:
        a, b = _num(old), _num(new)
        key.append((name, ("↑" if b > a else "↓" if b < a else "=") if a is not None and b is not None
                    else f"→ {new}"))
    kind = code_kind(r)
    if kind:
        key.append(("", kind))
    return tuple(sorted(set(key)))


def _minus(x: float) -> str:
    return f"{x:+.3g}".replace("-", "−")


@dataclass(frozen=True)
class Lesson:
    """One subject and all the evidence on it."""

    subject: str  # "LR ↑ from 0.01, 0.02"
    key: tuple[tuple[str, str], ...]  # what it is about: (parameter, ↑/↓/→ value) pairs, ("", code kind)
    verdict: str  # better, worse, no effect beyond the noise, crashes
    tries: tuple[int, ...]  # the experiments' numbers
    names: tuple[str, ...]  # their descriptions (for code changes, which have no parameter to name)
    runs: int  # runs of the workload that measured the metric
    measured: int  # tries with a value of the metric
    beyond: int  # tries decided beyond the noise
    kept: int
    outcomes: tuple[tuple[str, int], ...]  # what ended tries without a value: ("out-of-memory crashes", 2)
    metric: str
    effect: float | None  # the mean change of the metric, as it moved
    se: float | None  # its standard error
    last: float  # when the last evidence came (unix time)

    @property
    def text(self) -> str:
        """The lesson in one line, as lessons.md, status and the report show it."""
        parts = [f"{len(self.tries)} tr{'ies' if len(self.tries) != 1 else 'y'}"]
        if self.runs:
            parts[0] += f", {self.runs} run{'s' if self.runs != 1 else ''}"
        if self.effect is not None:
            spread = f" ± {self.se:.2g}" if self.se else ""
            parts.append(f"{self.metric} {_minus(self.effect)}{spread}")
        evidence = ", ".join(parts)
        tail = [f"{self.beyond} of {self.measured} beyond the noise"] if self.measured else []
        tail.append(f"kept {self.kept}")
        tail += [f"{n} {what}" for what, n in self.outcomes]
        return f"{self.subject}: {self.verdict} ({evidence}; {'; '.join(tail)})"

    @property
    def source(self) -> str:
        """Which experiments it is drawn from: ``#2, #5``; for a code change, with their descriptions
        (a code change has no parameter to name it)."""
        if self.subject.startswith("Code"):
            return ", ".join(f"#{s} {name[:40]}" for s, name in zip(self.tries, self.names))
        return ", ".join(f"#{s}" for s in self.tries)


def _se(r: Report) -> float | None:
    """The standard error a try's difference was decided against."""
    imp = r.improvement
    if r.z not in (None, 0) and imp is not None and math.isfinite(r.z):
        return abs(imp / r.z)
    if r.sigma is not None and r.values:
        return r.sigma * math.sqrt(2 / len(r.values))
    return None


def _lesson(key, rs: list[Report], k: float) -> Lesson:
    params = [(n, d) for n, d in key if n]
    code = [d for n, d in key if not n]
    olds = {n: sorted({o for r in rs for name, o, _ in r.changes if name == n}, key=lambda v: (_num(v) is None, _num(v) or 0, v))
            for n, _ in params}
    words = []
    for n, d in params:
        words.append(f"{n} {d}" + (f" from {', '.join(olds[n][:3])}" if d in "↑↓=" and olds[n] else ""))
    subject = " + ".join(words + [c[0].upper() + c[1:] if not words else c for c in code]) or "other changes"
    if len(params) > 1 or (params and code):
        subject += " together"
    measured = [r for r in rs if r.improvement is not None and r.status != Status.CRASH]
    deltas = [r.delta for r in measured]
    direction = rs[0].direction
    effect = se = None
    if measured:
        effect = math.fsum(deltas) / len(deltas)
        ses = [_se(r) for r in measured]
        known = [s for s in ses if s is not None]
        se = math.sqrt(math.fsum(s * s for s in known)) / len(known) if known else None
        if len(deltas) >= 3:
            spread = math.sqrt(math.fsum((d - effect) ** 2 for d in deltas) / (len(deltas) - 1)) / math.sqrt(len(deltas))
            se = max(se or 0.0, spread)
    beyond = [r for r in measured if r.beyond_noise]
    if not measured:
        verdict = CRASHES if any(r.status == Status.CRASH for r in rs) else NEUTRAL
    elif se:
        better = sign(direction) * effect
        verdict = (BETTER if better > 0 else WORSE) if abs(better) >= k * se else NEUTRAL
    else:  # no noise measured: the tries' own decisions, when they agree
        signs = {r.improvement > 0 for r in beyond}
        verdict = (BETTER if signs == {True} else WORSE) if beyond and len(beyond) == len(measured) and len(signs) == 1 \
            else NEUTRAL
    outcomes = Counter(f"crashed ({crash_kind(r)})" if r.status == Status.CRASH else
                       "pruned" if r.cause == Cause.PRUNED else "did not apply" if r.cause == Cause.CONFLICT else "no value"
                       for r in rs if r not in measured)
    return Lesson(subject=subject, key=key, verdict=verdict, tries=tuple(r.seq for r in rs),
                  names=tuple(r.description for r in rs), runs=sum(len(r.values) for r in measured),
                  measured=len(measured), beyond=len(beyond), kept=sum(r.status == Status.KEEP for r in rs),
                  outcomes=tuple(sorted(outcomes.items(), key=lambda x: (-x[1], x[0]))), metric=rs[0].metric,
                  effect=effect, se=se, last=max(r.started for r in rs))


ORDER = {BETTER: 0, WORSE: 1, CRASHES: 2, NEUTRAL: 3}


def learn(reports: Iterable[Report], k: float = 2.0) -> list[Lesson]:
    """One lesson per subject the run's experiments were about (the baseline and interrupted ones
    are none): those beyond the noise first, then by the weight of their evidence."""
    groups: dict[tuple, list[Report]] = defaultdict(list)
    for r in results(reports):
        if not r.is_baseline:
            groups[subject_of(r)].append(r)
    lessons = [_lesson(key, rs, k) for key, rs in groups.items()]
    return sorted(lessons, key=lambda x: (ORDER[x.verdict], -len(x.tries), x.tries[0]))


def lines(reports: Iterable[Report], k: float = 2.0) -> list[str]:
    """The lessons as lessons.md writes them: ``- SUBJECT: VERDICT (...). Source: #2, #5; last DATE``."""
    return [f"- {x.text}. Source: experiments {x.source}; last {dt.date.fromtimestamp(x.last).isoformat()}"
            for x in learn(reports, k)]
