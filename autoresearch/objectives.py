"""Objectives: which of two results is better when more than one metric counts, and targets as goals.

The verdict (plugins/verdict.py) asks one question of a candidate's runs against a reference's
(its baseline, or the branch tip): better beyond the noise, worse, or not known yet. The
``objective`` setting says how that question is answered:

    metric          the ``metric`` setting alone, in its ``direction`` (the default)
    lexicographic   ``metrics`` in order: the first decides when its change is beyond its own
                    noise; within its noise the next one decides; and so on. A metric in the
                    grey zone gets another run before the next one may decide
    weighted        ``weights``: the score Σ w·Δ/σ, each metric's change Δ (as it moved) divided
                    by its own noise σ; a weight's sign says which way is better (+ maximise,
                    − minimise). A metric whose runs never varied (σ 0) is divided by 1% of the
                    baseline's value instead (1 when that is 0). The score's own noise follows
                    (metrics taken as independent); it is shown and thresholded in the units of
                    the ``metric`` setting, so one weight is exactly ``objective = "metric"``
    targets         more ``targets`` met than the reference: better; fewer: worse; as many:
                    the ``metric`` setting decides, beyond the noise as ever

Each metric's direction is the ``directions`` table's (``directions = {dup_pct = "minimize"}``),
else the ``direction`` setting's. The ``metric`` setting stays the primary metric (results.tsv's
column, the baseline's repeats, pruning): it must be the first of ``metrics`` and one of
``weights``, which start-up checks, saying so in one line.

Targets are goals: a candidate that misses a target its baseline also misses is judged as any
other (a step toward a target is a keep); one that misses a target its baseline met is discarded
(a regression). ``targets_gate = true`` makes every target a hard gate: a keep must meet them all.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from autoresearch.reports import MAXIMIZE, MINIMIZE
from autoresearch.stats import AGAIN, DISCARD, KEEP, Evidence, evidence, sequential

OBJECTIVES = ("metric", "lexicographic", "weighted", "targets")
Values = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Objective:
    """The objective's settings, read once."""

    kind: str = "metric"
    primary: str = "val_bpb"  # the metric setting
    direction: str = MINIMIZE  # the primary's, the direction setting
    metrics: tuple[str, ...] = ()  # lexicographic: in order
    directions: Mapping[str, str] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    targets: Mapping[str, str] = field(default_factory=dict)
    gate: bool = False

    @classmethod
    def of(cls, config) -> Objective:
        return cls(kind=config.get("objective", "metric"), primary=config.get("metric"),
                   direction=config.get("direction"), metrics=tuple(config.get("metrics") or ()),
                   directions=dict(config.get("directions") or {}), weights=dict(config.get("weights") or {}),
                   targets=dict(config.get("targets") or {}), gate=bool(config.get("targets_gate", False)))

    def direction_of(self, metric: str) -> str:
        return self.directions.get(metric) or self.direction

    @property
    def counted(self) -> tuple[str, ...]:
        """Every metric the decision reads, the primary first."""
        names = {"lexicographic": self.metrics, "weighted": tuple(self.weights)}.get(self.kind, ())
        return tuple(dict.fromkeys((self.primary, *names)))

    def problem(self) -> str | None:
        """What makes these settings contradict each other, in one line, or None."""
        for name, d in self.directions.items():
            if d not in (MINIMIZE, MAXIMIZE):
                return f"directions.{name} = {d!r} (allowed: minimize, maximize)"
        if self.directions.get(self.primary, self.direction) != self.direction:
            return (f"directions.{self.primary} = {self.directions[self.primary]!r} contradicts direction = "
                    f"{self.direction!r} for the same metric (say it once, in direction)")
        if self.kind == "lexicographic":
            if not self.metrics:
                return 'objective = "lexicographic" needs metrics = ["first", "second", ...] in order of importance'
            if self.metrics[0] != self.primary:
                return (f"objective = \"lexicographic\": metric = {self.primary!r} must be the first of metrics "
                        f"({', '.join(self.metrics)}): set metric = {self.metrics[0]!r}")
        if self.kind == "weighted":
            if self.primary not in self.weights:
                return (f"objective = \"weighted\": metric = {self.primary!r} must be one of weights "
                        f"({', '.join(self.weights) or 'none given'}): the score is shown in its units")
            w = self.weights[self.primary]
            if w == 0 or (w > 0) != (self.direction == MAXIMIZE):
                return (f"weights.{self.primary} = {w:g} contradicts direction = {self.direction!r} (a positive "
                        "weight for a metric to maximize, a negative one for one to minimize)")
        if self.metrics and self.kind != "lexicographic":  # read by nothing else: a silent no-op otherwise
            return f'metrics is read only by objective = "lexicographic" (objective is {self.kind!r})'
        if self.weights and self.kind != "weighted":
            return f'weights is read only by objective = "weighted" (objective is {self.kind!r})'
        if self.kind == "targets" and not self.targets:
            return 'objective = "targets" needs targets = {metric = "< 0.05", ...}'
        return None

    def describe(self) -> str:
        """The objective in one line, for the session's header."""
        arrow = lambda m: f"{m} ({self.direction_of(m)})"  # noqa: E731
        if self.kind == "lexicographic":
            return "objective lexicographic: " + " > ".join(arrow(m) for m in self.metrics)
        if self.kind == "weighted":
            return "objective weighted: " + " ".join(f"{w:+g}·{m}/σ" for m, w in self.weights.items()) + \
                f" (shown in {self.primary} units)"
        if self.kind == "targets":
            return f"objective targets: more targets met wins; as many: {arrow(self.primary)}"
        return f"objective: {arrow(self.primary)}"


NAME = re.compile(r"[A-Za-z_][\w.-]{0,99}")  # a metric's name, as the metric setting allows


def check_names(names) -> str | None:
    """The metrics setting's check (and the tables' keys): metric names, each once."""
    bad = next((n for n in names if not NAME.fullmatch(n)), None)
    if bad is not None:
        return f"{bad!r} is not a metric name (letters, digits, '_', '.', '-')"
    return None if len(set(names)) == len(list(names)) else "names a metric twice"


def check_weights(weights: dict) -> str | None:
    """The weights setting's check: metric names, each weight a finite number from 1e-6 to 1e6 either
    way (0 weighs nothing: leave the metric out)."""
    for name, w in weights.items():
        if not math.isfinite(w) or not 1e-6 <= abs(w) <= 1e6:
            return f"{name} = {w}: must be from 1e-6 to 1e6, or from -1e6 to -1e-6 (leave out a metric that weighs nothing)"
    return check_names(list(weights))


# ----------------------------------------------------------------------------------------------
# Targets


def target_outcomes(targets: Mapping[str, str], metrics: Mapping[str, float],
                    baseline: Mapping[str, float]) -> list[tuple[str, bool, str]]:
    """(metric, met, in words) for each target, judged on the means (a metric not printed misses)."""
    from autoresearch.expect import parse_expectation

    out = []
    for metric, expr in targets.items():
        status, reason = parse_expectation(expr).check(metrics.get(metric), baseline.get(metric), metric)
        out.append((metric, status == "confirmed", reason))
    return out


def unmet(targets: Mapping[str, str], metrics: Mapping[str, float], baseline: Mapping[str, float]) -> list[str]:
    """The targets these metrics miss, in words ("dup_pct 11 not < 5")."""
    return [why for _, met, why in target_outcomes(targets, metrics, baseline) if not met]


def met_count(targets: Mapping[str, str], metrics: Mapping[str, float], baseline: Mapping[str, float]) -> int:
    return sum(met for _, met, _ in target_outcomes(targets, metrics, baseline))


def target_rule(obj: Objective, metrics: Mapping[str, float], reference: Mapping[str, float],
                baseline: Mapping[str, float]) -> list[str]:
    """The targets that turn a keep into a discard, in words: with targets_gate every missed one;
    otherwise those the reference met and the candidate misses (a regression). The targets
    objective compares counts instead: nothing more here."""
    if not obj.targets or (obj.kind == "targets" and not obj.gate):
        return []
    mine = target_outcomes(obj.targets, metrics, baseline)
    if obj.gate:
        return [why for _, met, why in mine if not met]
    theirs = {m: met for m, met, _ in target_outcomes(obj.targets, reference, baseline)}
    return [why for m, met, why in mine if not met and theirs.get(m)]


def baseline_unmet(config, report) -> list[str]:
    """The targets the run's baseline misses, in words: the header, status and the report show them."""
    targets = config.get("targets") or {}
    if not targets or report is None or not report.metrics:
        return []
    return unmet(targets, report.metrics, report.metrics)


# ----------------------------------------------------------------------------------------------
# The decision: a core for verdict.judge, (status, why, evidence, label, direction)


@dataclass(frozen=True)
class Core:
    status: str  # keep, discard or again
    why: str
    e: Evidence
    label: str  # the metric (or score) the evidence is in
    direction: str
    reference_mean: float | None  # the reference's mean in those units: what a "0.1%" threshold is a share of
    counted: bool = False  # decided by counting targets met: no simplicity or threshold rule overrides it


def negated(e: Evidence) -> Evidence:
    return Evidence(-e.improvement, e.n, e.n_ref, e.sigma)


def metric_core(values: Values, ref: Values, sigmas: Mapping[str, float | None], obj: Objective, k: float,
                max_repeats: int, metric: str | None = None) -> Core | None:
    """One metric, as ``objective = "metric"`` decides: the sequential rule on its evidence."""
    m = metric or obj.primary
    v, r = values.get(m) or (), ref.get(m) or ()
    if not v or not r:
        return None
    e = evidence(v, r, sigmas.get(m), obj.direction_of(m))
    status = sequential(e, k=k, max_repeats=max_repeats)
    return Core(status, why_of(status, e, k), e, m, obj.direction_of(m), math.fsum(r) / len(r))


def why_of(status: str, e: Evidence, k: float) -> str:
    if e.sigma == 0:
        return "better; the runs show no noise" if status == KEEP else "not better; the runs show no noise"
    if status == DISCARD and e.z is not None and e.z <= -k:
        return "worse beyond the noise"
    return {KEEP: "beyond the noise", DISCARD: "not beyond the noise", AGAIN: "in the grey zone"}[status]


def lexicographic_core(values: Values, ref: Values, sigmas, obj: Objective, k: float, max_repeats: int) -> Core | None:
    """The first metric whose change is beyond its noise decides; the last one decides as "metric"
    does. A metric either side did not print cannot tell: the next one decides."""
    shown = [m for m in obj.metrics if values.get(m) and ref.get(m)]
    if obj.primary not in shown:
        return None
    for i, m in enumerate(shown):
        c = metric_core(values, ref, sigmas, obj, k, max_repeats, m)
        assert c is not None
        if c.status == KEEP or c.status == AGAIN or i == len(shown) - 1:
            return Core(c.status, f"{m}: {c.why}" if len(shown) > 1 else c.why, c.e, m, c.direction, c.reference_mean)
        worse = sequential(negated(c.e), k=k, max_repeats=max_repeats)
        if worse == KEEP:
            return Core(DISCARD, f"{m}: worse beyond the noise", c.e, m, c.direction, c.reference_mean)
        if worse == AGAIN:
            return Core(AGAIN, f"{m}: in the grey zone", c.e, m, c.direction, c.reference_mean)
    return None  # not reached: the last metric decides


def scale(sigma: float | None, ref_mean: float) -> float:
    """What a weighted metric's change is divided by: its noise, or 1% of the reference without any."""
    if sigma:
        return sigma
    return abs(ref_mean) * 0.01 or 1.0


def weighted_core(values: Values, ref: Values, sigmas, obj: Objective, k: float, max_repeats: int) -> Core | None:
    """The score Σ w·Δ/σ, as evidence in the primary metric's units (see the module's docstring).
    A weighted metric either side did not print counts as no change."""
    if not values.get(obj.primary) or not ref.get(obj.primary):
        return None
    score, var, measured, n, n_ref = 0.0, 0.0, False, len(values[obj.primary]), len(ref[obj.primary])
    for m, w in obj.weights.items():
        v, r = values.get(m), ref.get(m)
        if not v or not r:
            continue
        ref_mean, sigma = math.fsum(r) / len(r), sigmas.get(m)
        score += w * (math.fsum(v) / len(v) - ref_mean) / scale(sigma, ref_mean)
        if sigma is not None:
            measured = True
            var += w * w if sigma > 0 else 0.0
    p_ref = ref[obj.primary]
    p_mean = math.fsum(p_ref) / len(p_ref)
    unit = scale(sigmas.get(obj.primary), p_mean) / abs(obj.weights[obj.primary])
    e = Evidence(score * unit, n, n_ref, unit * math.sqrt(var) if measured else None)
    status = sequential(e, k=k, max_repeats=max_repeats)
    label = "score" if len(obj.weights) > 1 else obj.primary
    return Core(status, why_of(status, e, k), e, label, obj.direction, p_mean)


def targets_core(values: Values, ref: Values, sigmas, obj: Objective, k: float, max_repeats: int,
                 baseline: Mapping[str, float] | None = None) -> Core | None:
    """More targets met than the reference: keep; fewer: discard; as many: the primary metric decides."""
    c = metric_core(values, ref, sigmas, obj, k, max_repeats)
    if c is None:
        return None
    mean = lambda vs: {m: math.fsum(x) / len(x) for m, x in vs.items() if x}  # noqa: E731
    base = dict(baseline if baseline is not None else mean(ref))
    mine, theirs = met_count(obj.targets, mean(values), base), met_count(obj.targets, mean(ref), base)
    if mine != theirs:
        status = KEEP if mine > theirs else DISCARD
        return Core(status, f"meets {mine} of {len(obj.targets)} targets, {theirs} before", c.e, c.label,
                    c.direction, c.reference_mean, counted=True)
    return c


CORES: dict[str, Callable[..., Core | None]] = {"metric": metric_core, "lexicographic": lexicographic_core,
                                                "weighted": weighted_core, "targets": targets_core}


def core(obj: Objective, values: Values, ref: Values, sigmas, k: float, max_repeats: int,
         baseline: Mapping[str, float] | None = None) -> Core | None:
    """The objective's decision of `values` (a candidate's runs, per metric) against `ref`'s."""
    if obj.kind == "targets":
        return targets_core(values, ref, sigmas, obj, k, max_repeats, baseline)
    return CORES[obj.kind](values, ref, sigmas, obj, k, max_repeats)


def unmet_line(config, report) -> str | None:
    """One line on the targets the baseline misses, or None when it meets them all (or has none)."""
    missed = baseline_unmet(config, report)
    if not missed:
        return None
    how = "targets_gate: a keep must meet them all" if config.get("targets_gate") else \
        "goals: a step toward one is kept"
    return f"targets the baseline misses ({how}): {'; '.join(missed)}"


def header_lines(config, history) -> list[str]:
    """What the session's header adds: the objective when it is not one metric, and the targets the
    baseline misses when it has run (a resumed run)."""
    obj = Objective.of(config)
    out = [obj.describe()] if obj.kind != "metric" else []
    base = next((r for r in history if r.is_baseline and r.status == KEEP), None)
    line = unmet_line(config, base)
    return out + ([line] if line else [])


def check_directions(directions: dict) -> str | None:
    bad = next((f"{m} = {d!r}" for m, d in directions.items() if d not in (MINIMIZE, MAXIMIZE)), None)
    return f"{bad} (allowed: minimize, maximize)" if bad else check_names(list(directions))


def check_targets(targets: dict) -> str | None:
    import re

    from autoresearch.errors import ExpectationError
    from autoresearch.expect import parse_expectation

    for metric, expr in targets.items():
        if not re.fullmatch(r"[A-Za-z_][\w.-]{0,99}", metric):
            return f"{metric!r} is not a metric name"
        try:
            parse_expectation(expr)
        except ExpectationError as exc:
            return f"{metric}: {exc}"
    return None
