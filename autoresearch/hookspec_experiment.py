"""The hook specifications of one experiment: measure (setup, run, metrics), then decide (verdict,
report, log, teardown), and the reports' and calibration's hooks.

Part of :mod:`autoresearch.hookspec`, which re-exports every one: the contract is that module's,
read top to bottom (split in two files to keep each readable; docs/hooks.md lists both, in order).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from autoresearch.config import Config
    from autoresearch.reports import Report, RunResult, Sample, Verdict
    from autoresearch.session import Experiment

hookspec = pluggy.HookspecMarker("autoresearch")


# -------------------------------------------------------------------------------------------
# One experiment: measure (setup -> run -> parse metrics), then decide (verdict -> report -> log
# -> teardown)


@hookspec(firstresult=True)
def autoresearch_experiment_measure(experiment: Experiment) -> bool | None:
    """Measure one experiment: set it up, log it as planned, run the workload (again while
    ``autoresearch_experiment_rerun`` says so); its runs are left in ``experiment.runs``.

    The protocol's first half, for any number of workers: with ``-n N`` it runs on the
    experiment's worker's thread, beside others. A run without a result is recorded as a run
    with a ``cause``, not raised; a stop (Ctrl-C, SIGTERM) raises through it. Wrap it
    (``wrapper=True``) to act around every measurement, or implement it with ``tryfirst=True``
    to measure differently.

    Stops at first non-None result.

    :param experiment: The experiment; the baseline experiment has ``hypothesis`` None.
    :returns: True once it is measured.
    """


@hookspec(firstresult=True)
def autoresearch_experiment_decide(experiment: Experiment) -> Report | None:
    """Decide a measured experiment against the branch tip as it is now, and record it: verdict,
    report, the ledger's "done" line (the commit point), logreport, teardown.

    The protocol's second half, for any number of workers: on the main thread, in dispatch
    order. Wrap it to act on every decision, or implement it with ``tryfirst=True`` to decide
    differently, ending with ``autoresearch.protocol.finish(experiment, verdict)``, which makes
    the commit point and calls the hooks that record it.

    Stops at first non-None result.

    :param experiment: The measured experiment; ``experiment.runs`` holds its runs.
    :returns: The experiment's :class:`autoresearch.Report`.
    """


@hookspec
def autoresearch_experiment_setup(experiment: Experiment) -> None:
    """Put the experiment's code in place: check out its baseline, apply its patch, commit.

    :param experiment: The experiment; the baseline experiment has ``hypothesis`` None.
    """


@hookspec
def autoresearch_experiment_logstart(experiment: Experiment) -> None:
    """Called after setup, right before the workload starts (the journal's PLANNED entry).

    :param experiment: The experiment, its patch applied.
    """


@hookspec(firstresult=True)
def autoresearch_experiment_run(experiment: Experiment) -> RunResult | None:
    """Run the workload once for one experiment: the executor (local by default).

    The run's seed is ``experiment.seed`` (0 for a commit's first run, then 1, 2, ...), passed to
    the workload as ``AUTORESEARCH_SEED``; its log is ``experiment.log_path``. Called again for
    each repeat that ``autoresearch_experiment_rerun`` asks for.

    Stops at first non-None result.

    :param experiment: The experiment, its patch applied and committed; ``experiment.runs``
        holds the runs before this one.
    :returns: A :class:`autoresearch.RunResult` (exit code, timing, log path; a ``cause`` when
        the executor itself stopped the run, such as a timeout).
    """


@hookspec(firstresult=True)
def autoresearch_experiment_rerun(experiment: Experiment, runs: tuple[RunResult, ...]) -> bool | None:
    """Called after each successful run: run the workload again (with the next seed) first?

    The experiment's metrics are then the mean over its runs. A repeat plugin, or a verdict
    that needs more runs to decide beyond the noise, returns True.

    Stops at first non-None result.

    :param experiment: The experiment.
    :param runs: Its runs so far, each with its metrics.
    :returns: True to run again; False or None to go on to the verdict.
    """


@hookspec
def autoresearch_experiment_progress(experiment: Experiment, elapsed: float, line: str, loss: float | None) -> str | None:
    """Called about twice a second while the workload trains, with its latest progress line.

    Return a reason (a non-empty string) to stop the run now: the executor kills the workload's
    process group, as at a timeout, and the run ends with cause ``pruned`` and the reason as its
    message; the default verdict makes that a discard, never a crash (the prune plugin does this
    for runs whose learning curve stays behind the tip's).

    :param experiment: The running experiment.
    :param elapsed: Seconds since the workload started.
    :param line: The last complete line of its log ("" before the first).
    :param loss: The latest loss parsed from the progress lines, or None.
    :returns: None to let it run on; a reason to stop it.
    """


@hookspec
def autoresearch_parse_metrics(experiment: Experiment, log_path: Path) -> dict[str, float] | None:
    """Read metrics from a finished run's log.

    All implementations are called and their dictionaries merged: for a name two plugins both
    return, the plugin registered later wins (a ``conftest.py``, an installed or a ``-p``
    plugin over the built-in summary-line parser).

    :param experiment: The experiment.
    :param log_path: The workload's log file.
    :returns: Metric name to value, or None.
    """


@hookspec(firstresult=True)
def autoresearch_make_verdict(experiment: Experiment, metrics: dict[str, float], result: RunResult,
                              runs: tuple[RunResult, ...], tip: Sample) -> Verdict | None:
    """Decide keep, discard or crash: the whole rule, the "beat the branch tip too" part included.

    An implementation with ``tryfirst=True`` in a ``conftest.py`` replaces the built-in rule;
    whatever it returns is the verdict.

    Stops at first non-None result.

    :param experiment: The experiment, with ``baseline`` (a :class:`autoresearch.Sample` of
        every run of the commit it builds on), ``baseline_metrics`` and ``lines_added`` /
        ``lines_removed`` of its patch.
    :param metrics: The experiment's metrics, the mean over its successful runs (empty when
        none printed any).
    :param result: Its last run; ``result.cause`` says why it gave no result, if it did not.
    :param runs: All its runs.
    :param tip: Every run of the branch tip so far: a keep moves the branch there.
    :returns: A :class:`autoresearch.Verdict` with its reason in words.
    """


@hookspec(firstresult=True)
def autoresearch_make_report(experiment: Experiment, verdict: Verdict) -> Report | None:
    """Build the experiment's frozen :class:`autoresearch.Report` from its runs and verdict.

    Wrap it (``wrapper=True``) to add to the report, as the expectation plugin does with
    ``dataclasses.replace``.

    Stops at first non-None result.

    :param experiment: The experiment, its runs done.
    :param verdict: The verdict.
    :returns: The report.
    """


@hookspec
def autoresearch_experiment_logreport(report: Report) -> None:
    """Record a finished experiment (results.tsv, journal, lessons, terminal, JUnit XML, -x).

    Called after the report is in the ledger, so ``session.history`` already holds it. At least
    once: when a runner is killed after the report reached the ledger but before every plugin
    recorded it, the resumed run calls this again for it. Make it idempotent (render from
    ``session.history``, or check what is already written).

    :param report: The experiment's frozen report.
    """


@hookspec
def autoresearch_experiment_teardown(experiment: Experiment, report: Report) -> None:
    """Keep or discard the experiment's commit: advance the branch, or reset it to the baseline.

    :param experiment: The experiment.
    :param report: Its report; ``report.status`` is keep, discard, crash or interrupted, and
        ``experiment.session.tip`` is already the commit the branch must be at.
    """


@hookspec
def autoresearch_report_extra(config: Config) -> Any:
    """Add a section to ``autoresearch report``.

    :param config: The configuration.
    :returns: A Markdown string, or None.
    """


@hookspec
def autoresearch_verdict_simulate(config: Config, repeats: int, max_repeats: int, noise_k: float,
                                  effects: list[float], rng: Any) -> list[tuple[float, bool, int]] | None:
    """Simulate one session of the keep/discard rule with these settings, on a workload whose noise
    has σ 1: the baseline, then one candidate per true effect (an improvement in units of σ), each
    run until the rule decides. ``autoresearch calibrate`` draws its table of choices from it; a
    plugin that replaces the verdict simulates its own rule here (with ``tryfirst=True``: calibrate
    uses the first result).

    :param config: The configuration.
    :param repeats: Runs of a candidate before the rule decides on one run.
    :param max_repeats: Runs at most, then the means decide.
    :param noise_k: How far beyond the noise a decision must be.
    :param effects: The true effect of each candidate, in order.
    :param rng: The ``random.Random`` to draw the noise from.
    :returns: ``(effect, kept, runs)`` for each candidate, or None.
    """
