"""The hook specifications: the whole contract between the runner and its plugins.

Every built-in feature (collection, execution, git, results.tsv, the verdict, the journal, the
lessons, the terminal, JUnit XML) is a plugin implementing these hooks, exactly as a user's
``conftest.py`` or an installed plugin would. All hooks carry the ``autoresearch_`` prefix; a
plugin that implements an ``autoresearch_*`` function not listed here is refused at registration.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from autoresearch.config import Config, Parser
    from autoresearch.model import Hypothesis
    from autoresearch.reports import Report, RunResult, Verdict
    from autoresearch.session import Experiment, Session

hookspec = pluggy.HookspecMarker("autoresearch")


# -------------------------------------------------------------------------------------------
# Initialization


@hookspec(historic=True)
def autoresearch_addoption(parser: Parser) -> None:
    """Register command-line options and ``[tool.autoresearch]`` settings.

    Called once for every plugin, including plugins registered later (historic).

    :param parser: Use ``parser.addsetting(name, *flags, ...)`` for a setting that can be given
        both in ``pyproject.toml`` and on the command line, or ``parser.addoption(*flags, ...)``
        for a command-line flag only.
    """


@hookspec(historic=True)
def autoresearch_configure(config: Config) -> None:
    """Perform initial configuration after options are parsed.

    Stateful plugins register themselves here, only when enabled (as the JUnit XML writer does
    for ``--junitxml``).

    :param config: The run's configuration.
    """


@hookspec
def autoresearch_unconfigure(config: Config) -> None:
    """Undo configuration before the process exits.

    :param config: The run's configuration.
    """


# -------------------------------------------------------------------------------------------
# Collection


@hookspec(firstresult=True)
def autoresearch_collect_file(file_path: Path, config: Config) -> list[Hypothesis] | None:
    """Read the hypotheses in one file.

    Stops at first non-None result.

    :param file_path: The candidate file (absolute).
    :param config: The run's configuration.
    :returns: The file's hypotheses (an empty list for a file of this type that holds none), or
        None when this plugin does not handle the file. Raise
        :class:`autoresearch.CollectError` for an invalid file.
    """


@hookspec
def autoresearch_collection_modifyitems(session: Session, config: Config, items: list[Hypothesis]) -> None:
    """Filter or re-order the collected hypotheses in place (``-k`` selection lives here).

    :param session: The session.
    :param config: The run's configuration.
    :param items: The collected hypotheses, in run order; modify the list in place.
    """


@hookspec
def autoresearch_collection_finish(session: Session) -> None:
    """Called after collection and selection are complete; ``session.items`` is final.

    :param session: The session.
    """


# -------------------------------------------------------------------------------------------
# The session


@hookspec
def autoresearch_sessionstart(session: Session) -> None:
    """Called after collection, before the first experiment: prepare the workspace.

    The git plugin creates or resumes the run's branch and worktree here and sets
    ``session.workdir``.

    :param session: The session.
    """


@hookspec
def autoresearch_sessionfinish(session: Session, exitstatus: int) -> None:
    """Called once when the session ends, whatever ended it (also after Ctrl-C or an error).

    :param session: The session.
    :param exitstatus: The :class:`autoresearch.ExitCode` the process will exit with.
    """


# -------------------------------------------------------------------------------------------
# One experiment: setup -> run -> parse metrics -> verdict -> log -> teardown


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
    """Run the workload for one experiment.

    Stops at first non-None result.

    :param experiment: The experiment, its patch applied and committed.
    :returns: A :class:`autoresearch.RunResult` (exit code, timing, log path).
    """


@hookspec
def autoresearch_experiment_progress(experiment: Experiment, elapsed: float, line: str, loss: float | None) -> None:
    """Called about twice a second while the workload trains, with its latest progress line.

    :param experiment: The running experiment.
    :param elapsed: Seconds since the workload started.
    :param line: The last complete line of its log ("" before the first).
    :param loss: The latest loss parsed from the progress lines, or None.
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
def autoresearch_make_verdict(experiment: Experiment, metrics: dict[str, float], result: RunResult) -> Verdict | None:
    """Decide keep, discard or crash.

    Stops at first non-None result.

    :param experiment: The experiment, with ``baseline_metrics`` and ``lines_added`` /
        ``lines_removed`` of its patch.
    :param metrics: The metrics the run printed (empty when it printed none).
    :param result: How the workload process ended.
    :returns: A :class:`autoresearch.Verdict` with its reason in words.
    """


@hookspec
def autoresearch_experiment_logreport(report: Report) -> None:
    """Record a finished experiment (results.tsv, journal, lessons, terminal, JUnit XML).

    :param report: The experiment's frozen report.
    """


@hookspec
def autoresearch_experiment_teardown(experiment: Experiment, report: Report) -> None:
    """Keep or discard the experiment's commit: advance the branch, or reset it to the baseline.

    :param experiment: The experiment.
    :param report: Its report; ``report.status`` is keep, discard, crash or interrupted.
    """


@hookspec
def autoresearch_report_extra(config: Config) -> Any:
    """Add a section to ``autoresearch report``.

    :param config: The configuration.
    :returns: A Markdown string, or None.
    """
