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

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from autoresearch.config import Config, Parser
    from autoresearch.model import Hypothesis
    from autoresearch.patches import PatchKind
    from autoresearch.session import Session

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


from autoresearch import hookspec_experiment  # noqa: E402
from autoresearch.hookspec_experiment import (  # noqa: E402,F401 (the experiment's hooks: specified there)
    autoresearch_experiment_measure, autoresearch_experiment_decide, autoresearch_experiment_setup,
    autoresearch_experiment_logstart, autoresearch_experiment_run, autoresearch_experiment_rerun,
    autoresearch_experiment_progress, autoresearch_parse_metrics, autoresearch_make_verdict,
    autoresearch_make_report, autoresearch_experiment_logreport, autoresearch_experiment_teardown,
    autoresearch_report_extra, autoresearch_verdict_simulate,
)

#: The modules holding the rest of the specification, in the order docs/hooks.md lists them.
PARTS = (hookspec_experiment,)
