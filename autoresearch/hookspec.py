"""The hook specifications: the whole contract between the runner and its plugins.

Every built-in feature (collection, the run loop, the experiment protocol, execution, git,
results.tsv, the verdict, expectations, the journal, the lessons, the terminal, JUnit XML, -x,
--watch) is a plugin implementing these hooks, exactly as a user's ``conftest.py`` or an
installed plugin would. The trunk, as pytest's::

    autoresearch_sessionstart
    autoresearch_runloop                       the baseline, then the queue; per experiment:
        autoresearch_experiment_measure        (on a worker's thread with -n > 1)
            autoresearch_experiment_setup
            autoresearch_experiment_logstart
            autoresearch_experiment_run        } once, then again while
            autoresearch_parse_metrics         } autoresearch_experiment_rerun says so
        autoresearch_experiment_decide         (on the main thread, in dispatch order)
            autoresearch_make_verdict
            autoresearch_make_report
            autoresearch_experiment_logreport
            autoresearch_experiment_teardown
        autoresearch_queue_empty               more to run? (--watch)
    autoresearch_sessionfinish

All hooks carry the ``autoresearch_`` prefix; a plugin that implements an ``autoresearch_*``
function not listed here is refused at registration.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from autoresearch.config import Config, Parser
    from autoresearch.model import Hypothesis
    from autoresearch.patches import PatchKind
    from autoresearch.reports import Report, RunResult, Sample, Verdict
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


@hookspec
def autoresearch_patch_kinds(config: Config) -> list[PatchKind] | None:
    """Add patch kinds: what a hypothesis may change besides the built-in kinds
    (``set``, ``replace``, ``diff``, ``keys``, ``args``, ``overrides``).

    Each kind is one :class:`autoresearch.patches.PatchKind` object: it reads its own keys from
    a hypothesis (its table in TOML, ``patch.<name>(...)`` in Python), applies itself to the
    editable files' texts, describes itself for ``--collect-only`` and names the parameters it
    changes for the journal, reports and MLflow; its ``parameters(texts)`` names the whole
    configuration the files run with (``set``: every module-level constant), which MLflow logs for
    every run and ``autoresearch diff`` compares. A hypothesis that does not use a kind keeps its
    key. Called once per configuration; a kind whose name or keys are taken is refused.

    :param config: The run's configuration.
    :returns: A list of kinds, or None.
    """


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
def autoresearch_preflight(config: Config) -> None:
    """Called by ``run`` after collection, before anything is written (no branch, no lock file, no
    results): check what the plugin needs (a server it logs to, a file it writes) and raise
    :class:`autoresearch.UsageError` with one line to refuse the run.

    :param config: The run's settings.
    """


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


@hookspec(firstresult=True)
def autoresearch_runloop(session: Session) -> object | None:
    """Run the session's experiments: the baseline first, then ``session.queue()``.

    The default runs one experiment at a time, ``autoresearch.protocol.runprotocol`` (the
    measure, then the decide hook) for each, stopping early when ``session.shouldstop`` is set.
    Replace it to run experiments differently (several workers, another order), through those
    two hooks; ``autoresearch.loop.run_baseline`` runs the baseline the way the default does.

    Stops at first non-None result.

    :param session: The session; ``session.items`` holds the collected hypotheses.
    :returns: Any non-None value once the loop has run.
    """


@hookspec(firstresult=True)
def autoresearch_queue_empty(session: Session) -> list[Hypothesis] | None:
    """Called when every queued hypothesis has run: hand over more, or end the loop.

    ``--watch`` implements it by waiting for new or changed hypothesis files. It may block;
    a hypothesis whose content has already run in this session is skipped.

    Stops at first non-None result.

    :param session: The session.
    :returns: More hypotheses to run, or None (or an empty list) to end the run loop.
    """


@hookspec(firstresult=True)
def autoresearch_dispatch_hold(session: Session, inflight: int) -> str | None:
    """With ``-n N``: a reason not to start another experiment now, beside the `inflight` ones
    already dispatched, or None to start it. The workers plugin asks before each dispatch that
    would run beside others, never when none is in flight; a held experiment starts when one in
    flight is decided and no plugin holds it any more. The cost plugin holds what ``cost_budget``
    could not pay for.

    Stops at first non-None result.

    :param session: The session; ``session.history`` holds what has been decided.
    :param inflight: How many experiments are dispatched and not yet decided (at least 1).
    :returns: Why to wait (one line), or None.
    """


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
