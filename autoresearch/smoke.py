"""Smoke runs (seed 002's "Smoke Test Plan"): each experiment first runs briefly, then for real.

With ``smoke_steps`` or ``smoke_budget`` set, before an experiment's first run the workload runs
once through the same executor (the same sandbox, the same hooks) with its budget overridden:
``smoke_steps`` optimizer steps (AUTORESEARCH_MAX_STEPS, ``{budget_steps}``) and ``smoke_budget``
seconds (AUTORESEARCH_TIME_BUDGET, ``{budget}``, and the run's hard limit, as ``timeout`` derives
it from a budget), its log ``NNN-name.smoke.log``. It passes when it printed a progress line (a
line with a loss, as the live line reads it) or the metric; the baseline's must print the metric,
so a metric that cannot be read stops the session in seconds. A smoke run that fails is the
experiment's one run: a crash with cause ``smoke`` whose message says why, which cost the smoke
run's seconds, not a full budget. A smoke run that passes is no measurement: its seconds are
counted in the cost of the experiment's first run (``RunResult.smoke_seconds``).

Off by default: a workload that crashes at its first step costs its start-up either way, so a
smoke run saves time only on runs that fail late (in the evaluation, in the summary) or print
nothing until the time limit, and costs every passing candidate a start-up and an evaluation
(bench/bench_smoke.py measures both).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.config import positive
from autoresearch.reports import Cause, RunResult, printable
from autoresearch.supervise import LOSS, read_tail


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("smoke_steps", "--smoke-steps", type="int", default=None, check=positive,
                      help="run each experiment first for this many optimizer steps (AUTORESEARCH_MAX_STEPS): it "
                           "must print a progress line or the metric (the baseline: the metric) before its full "
                           "run starts, or it is a crash with cause smoke; default: no smoke run")
    parser.addsetting("smoke_budget", "--smoke-budget", type="float", default=None, check=positive,
                      help="the smoke run's time budget in seconds (AUTORESEARCH_TIME_BUDGET; its hard limit is "
                           "derived from it as timeout is from budget); alone, it turns smoke runs on too")


@dataclass(frozen=True)
class Limits:
    """A smoke run's budget, in place of the settings' while it runs (``experiment.smoke``)."""

    budget: float | None  # seconds, or None for the budget setting's
    steps: int | None  # optimizer steps, or None for the budget_steps setting's


def limits(config) -> Limits | None:
    """The smoke run's budget, or None when smoke runs are off."""
    steps, budget = config.get("smoke_steps"), config.get("smoke_budget")
    return Limits(budget, steps) if steps or budget else None


def printed_progress(log_path: str) -> bool:
    """Whether the log's tail holds a progress line: a line with a loss, as the live line reads it."""
    return bool(log_path) and any(LOSS.search(line) for line in read_tail(Path(log_path), 65536).splitlines())


def first(exp, call) -> float | None:
    """The smoke run before an experiment's first run, run by `call` (protocol.call: one run of the
    workload, its metrics and cause): its seconds when it passed (0.0 when smoke runs are off, or the
    experiment ran before), or None when it failed; the failed run is then recorded on the
    experiment, a crash with cause ``smoke``."""
    config = exp.session.config
    wanted = limits(config)
    if wanted is None or exp.runs:
        return 0.0
    exp.smoke = wanted
    try:
        result = call(exp)  # the executor, the metrics, the cause: as for any run
    finally:
        exp.smoke = None
    why = failure(result, config.get("metric"), baseline=exp.hypothesis is None)
    if why is None:
        return result.duration
    what = f"{wanted.steps} steps" if wanted.steps else f"{wanted.budget:g} s"
    exp.runs.append(replace(result, cause=Cause.SMOKE, metrics={}, message=printable(
        f"smoke run ({what}) failed after {result.duration:.1f}s: {why}")[:500]))
    return None


def failure(result: RunResult, metric: str, baseline: bool) -> str | None:
    """Why a smoke run failed, or None when it passed: a candidate must have printed a progress line
    or the metric (a run stopped at its limit after progress is healthy, only slow), the baseline
    the metric itself, readable."""
    if result.ok:
        return None
    shown = result.message or result.cause
    if result.cause == Cause.INTERRUPTED:
        return shown
    healthy = result.cause in (Cause.TIMEOUT, Cause.NO_METRIC, Cause.PRUNED) and (
        metric in result.metrics or printed_progress(result.log_path))
    if baseline:
        return f"the baseline's smoke run must print {metric}, and {shown}" if healthy else shown
    if healthy:
        return None
    if result.cause in (Cause.TIMEOUT, Cause.NO_METRIC):
        return f"it printed no progress line and no {metric} ({shown})"
    return shown
