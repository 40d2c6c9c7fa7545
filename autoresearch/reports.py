"""What the protocol's phases produce: how a run of the workload ended, the verdict, the report.

One rule each lives here: what an experiment's outcome can be (:class:`Status`) and why a run gave
no result (:class:`Cause`), both defined in autoresearch/outcomes.py and re-exported here; which of two values is better (:func:`sign`, :func:`better`,
:func:`improvement`, :func:`best_kept`), how far the best kept result moved from the baseline
(:func:`gain`), which reports are results (:func:`results`: an interrupted one is not), and what
the value of several runs is (their mean, :func:`mean_metrics`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable


from autoresearch.outcomes import DECIDED, MEASURED, Cause, ExitCode, Status, printable  # noqa: F401 (their home)


#: The metric's direction, as the ``direction`` setting spells it.
MINIMIZE, MAXIMIZE = "minimize", "maximize"


def sign(direction: str) -> float:
    """+1.0 when a higher value is better (``maximize``), -1.0 when a lower one is (``minimize``):
    the one place the direction is read."""
    return -1.0 if direction == MINIMIZE else 1.0


def better(a: float, b: float, direction: str) -> bool:
    """True when `a` is strictly better than `b` for a metric to ``minimize`` or ``maximize``."""
    return improvement(a, b, direction) > 0


def improvement(value: float, base: float, direction: str) -> float:
    """How much better `value` is than `base`: positive when better, whatever the direction."""
    return sign(direction) * (value - base)


def results(reports: Iterable[Report]) -> list[Report]:
    """The reports that are results: an interrupted experiment is none (it runs again on resume)."""
    return [r for r in reports if r.status != Status.INTERRUPTED]


def best_kept(reports: Iterable[Report]) -> Report | None:
    """The kept experiment with the best value of its metric, or None; of equal values the later (it
    was kept over the earlier: by another metric of the objective, or as simpler code)."""
    best = None
    for r in reports:
        if r.status == Status.KEEP and r.value is not None and (best is None or not better(best.value, r.value, r.direction)):
            best = r
    return best


@dataclass(frozen=True)
class Gain:
    """The best kept result against the run's baseline: what status, the terminal and the lessons say."""

    best: Report
    baseline: Report | None  # the baseline experiment, when it printed a value

    @property
    def delta(self) -> float | None:
        """The best value minus the baseline's, in the metric's units (signed as the metric moved)."""
        return None if self.baseline is None else self.best.value - self.baseline.value

    @property
    def improvement(self) -> float | None:
        """How much better than the baseline: positive when better, whatever the direction."""
        return None if self.baseline is None else improvement(self.best.value, self.baseline.value, self.best.direction)


def gain(reports: Iterable[Report]) -> Gain | None:
    """The best kept experiment and the baseline it is measured from; None before any keep."""
    reports = list(reports)
    best = best_kept(reports)
    if best is None:
        return None
    base = next((r for r in reports if r.is_baseline and r.status == Status.KEEP and r.value is not None), None)
    return Gain(best, base)


def mean_metrics(runs: Iterable[dict[str, float]]) -> dict[str, float]:
    """The value of several runs: the mean of each metric over the runs that printed it."""
    sums: dict[str, list[float]] = {}
    for metrics in runs:
        for name, value in metrics.items():
            sums.setdefault(name, []).append(value)
    return {name: math.fsum(vs) / len(vs) for name, vs in sums.items()}


def fmt(mean: float | None, sigma: float | None, n: int) -> str:
    """``3.4452 ± 0.012 (n=3)``: a mean of n runs with its standard error, wherever it is shown."""
    if mean is None:
        return "—"
    if not sigma or n < 1:  # no noise measured (yet), or none at all: the value as printed
        return f"{mean:.6f}" + (f" (n={n})" if n > 1 else "")
    return f"{mean:.4f} ± {sigma / math.sqrt(n):.2g} (n={n})"


@dataclass(frozen=True)
class RunResult:
    """One run of the workload: how the process ended and what it printed."""

    returncode: int | None  # None when the runner killed it (timeout, interrupt) or it never started
    duration: float  # seconds of wall time
    log_path: str
    seed: int = 0  # AUTORESEARCH_SEED it ran with: 0 for a commit's first run, then 1, 2, ...
    metrics: dict[str, float] = field(default_factory=dict)
    cause: str = ""  # a Cause when the run gave no usable result, "" when it ended well
    message: str = ""  # the cause in one line, for people: "timeout: killed after 600s (limit 600s)"
    signal: int | None = None  # the signal that killed it, when one from outside did
    evaluated: dict[str, float] | None = None  # what the protected evaluator measured (the evaluate setting)
    overrun: float = 0.0  # seconds it ran past its budget and the slack (0: within them)
    device: str = ""  # what its summary's `device:` line named (cuda, cpu, mps), "" when it printed none
    smoke_seconds: float = 0.0  # seconds of the smoke run that passed before this run (its cost)

    @property
    def ok(self) -> bool:
        return not self.cause

    @property
    def timed_out(self) -> bool:
        return self.cause == Cause.TIMEOUT

    @property
    def interrupted(self) -> bool:
        return self.cause == Cause.INTERRUPTED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Sample:
    """Every run measured for one commit: what a verdict compares with (the tip, a baseline)."""

    commit: str
    runs: tuple[dict[str, float], ...] = ()  # each successful run's metrics

    @property
    def metrics(self) -> dict[str, float]:
        return mean_metrics(self.runs)

    def values(self, metric: str) -> tuple[float, ...]:
        return tuple(r[metric] for r in self.runs if metric in r)

    def mean(self, metric: str) -> float | None:
        return self.metrics.get(metric)


@dataclass(frozen=True)
class Verdict:
    status: Status  # keep, discard or crash (interrupted: the protocol's own, at a stop)
    reason: str  # in words: "keep: -0.0062 val_bpb for +4 lines"
    sigma: float | None = None  # the run-to-run noise it was judged against (pooled)
    z: float | None = None  # its improvement over what it was compared with, in standard errors
    beyond_noise: bool = False  # whether the decision stands beyond the noise (|z| >= noise_k)
    outliers: tuple[int, ...] = ()  # the runs (0-based) flagged as outliers: kept, left out of the means


@dataclass(frozen=True)
class Report:
    """Everything known about one finished experiment; handed to every logreport hook."""

    seq: int  # the experiment's number in the run: 0 for the first baseline, then 1, 2, ...
    tag: str
    nodeid: str
    name: str
    key: str  # content hash of the hypothesis; "" for the baseline (the unmodified code)
    description: str
    hypothesis: str
    status: Status  # keep, discard, crash or interrupted
    reason: str
    metric: str
    direction: str
    metrics: dict[str, float] = field(default_factory=dict)  # the mean over its successful runs
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    expectation: str | None = None  # confirmed, refuted, or None when nothing was expected
    expectation_details: tuple[str, ...] = ()
    expect: tuple[tuple[str, str], ...] = ()
    changes: tuple[tuple[str, str, str], ...] = ()  # (NAME, old, new) of set patches
    patch_kinds: tuple[str, ...] = ()
    commit: str = ""
    baseline_commit: str = ""
    lines_added: int = 0
    lines_removed: int = 0
    started: float = 0.0  # unix time
    duration: float = 0.0  # seconds of workload time, all runs together
    log_path: str = ""  # the last run's log
    returncode: int | None = None
    cause: str = ""  # for a crash or an interrupt: a Cause value
    root_cause: str = ""  # ... and in words
    log_tail: str = ""
    runs: tuple[RunResult, ...] = ()  # every run of the workload, in order
    sigma: float | None = None  # the run-to-run noise of the metric when it was decided (pooled)
    z: float | None = None  # its improvement in standard errors of the difference
    beyond_noise: bool = False  # decided beyond the noise: evidence a rule may be drawn from
    outliers: tuple[int, ...] = ()  # the runs (0-based) flagged as outliers: kept, left out of the means

    @property
    def is_baseline(self) -> bool:
        return not self.key

    @property
    def setup_crash(self) -> bool:
        """The baseline (the unmodified code) crashed: the setup is broken (data, environment), no idea
        was tested; no lesson is drawn from it, and summaries count it apart."""
        return self.is_baseline and self.status == Status.CRASH

    @property
    def value(self) -> float | None:
        return self.metrics.get(self.metric)

    @property
    def baseline_value(self) -> float | None:
        return self.baseline_metrics.get(self.metric)

    @property
    def improvement(self) -> float | None:
        """How much better than its baseline, positive when better, direction-aware."""
        if self.value is None or self.baseline_value is None:
            return None
        return improvement(self.value, self.baseline_value, self.direction)

    @property
    def delta(self) -> float | None:
        """Its value minus its baseline's, in the metric's units (signed as the metric moved)."""
        if self.value is None or self.baseline_value is None:
            return None
        return self.value - self.baseline_value

    @property
    def pruned(self) -> bool:
        """Stopped early by a plugin (its learning curve stayed behind): a discard, no crash."""
        return self.cause == Cause.PRUNED

    @property
    def values(self) -> tuple[float, ...]:
        """The metric's value in each successful run."""
        return tuple(r.metrics[self.metric] for r in self.runs if r.ok and self.metric in r.metrics)

    @property
    def shown(self) -> str:
        """The metric as it is shown everywhere: ``3.4452 ± 0.012 (n=3)``, or ``—``."""
        return fmt(self.value, self.sigma, len(self.values) or 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("expectation_details", "patch_kinds", "outliers"):  # a 1,000-experiment ledger: no fields() scan each
            if name in known:
                known[name] = tuple(known[name])
        for name in ("expect", "changes"):
            known[name] = tuple(tuple(x) for x in known.get(name, ()))
        known["runs"] = tuple(RunResult.from_dict(r) for r in known.get("runs", ()))
        if known.get("status") in Status._value2member_map_:  # an unknown word is kept as read: it matches none
            known["status"] = Status(known["status"])
        return cls(**known)


def record(report: Report, memory_metric: str = "peak_vram_mb") -> dict[str, Any]:
    """One finished experiment whole, as results.jsonl and ``report --json`` give it: the report,
    its memory in GB, and the metric in every run (``values``) with their ``n``, ``mean`` and ``sem``."""
    entry = report.to_dict()
    entry.pop("log_tail", None)
    entry["memory_gb"] = round(report.metrics.get(memory_metric, 0.0) / 1024, 1)
    values = report.values  # the metric in every successful run; its mean is the value in results.tsv
    entry.update(values=list(values), n=len(values), mean=report.value, sem=sem(report.sigma, len(values)))
    entry["setup_crash"] = report.setup_crash
    return entry


def read_results(path: Path) -> list[dict[str, str]]:
    """Parse a results.tsv back into rows, one dict per line keyed by the header."""
    lines = path.read_text().split("\n")[:-1]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def failed_verdict(runs) -> Verdict | None:
    """The one crash rule: the verdict on an experiment with a run that gave no result, or None.

        a conflict with a kept change, or a run pruned early   -> discard (the idea lost)
        anything else (timeout, OOM, NaN, exit code, no metric) -> crash

    The verdict plugin and the core's fallback verdict (``-p no:verdict``) both call it."""
    failed = next((r for r in runs if not r.ok), None)
    if failed is None:
        return None
    status = Status.DISCARD if failed.cause in (Cause.CONFLICT, Cause.PRUNED) else Status.CRASH
    return Verdict(status, f"{status}: {failed.message or failed.cause}")


def sem(sigma: float | None, n: int) -> float | None:
    """The standard error of a mean of n runs."""
    return None if sigma is None or n < 1 else sigma / math.sqrt(n)
