"""The session wrapper, as pytest's ``main.wrap_session``: collection, the lock, opening or
resuming the run, ``sessionstart`` / ``sessionfinish``; and how every command ends.

    wrap_session
      collect (an error: exit 4, nothing written)
      lock -> open or resume the run -> sessionstart
        autoresearch_runloop          (loop.py: the baseline, then the queue)
          autoresearch_experiment_measure    (protocol.py: setup -> run -> metrics; a worker's thread with -n N)
          autoresearch_experiment_decide     (protocol.py: verdict -> report -> the commit point -> teardown)
      sessionfinish, whatever ended the session

Every way a command can end maps to its exit code in one place: :func:`guard` (cli.main runs
every command in it), by type (:func:`exit_code`), with one line said (:func:`ending`).
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from autoresearch.session import Session

from autoresearch import interrupts
from autoresearch.checks import check_output, check_state_dir, inside  # noqa: F401 (check_output: cli.py's)
from autoresearch.errors import GitError, OutputClosed, Terminated, UsageError
from autoresearch.lock import Lock
from autoresearch.outcomes import ExitCode

# The session's modules are imported where a run needs them: every command ends through guard().


def autoresearch_addoption(parser) -> None:
    from autoresearch.session import default_tag

    parser.addoption("--tag", default=None, help="run tag: the branch is autoresearch/TAG (default: today, e.g. "
                                                  f"{default_tag()})")
    parser.addoption("--resume", action="store_true", help="continue the run of an existing tag (--tag, default "
                                                         "the latest run) instead of starting a new one; "
                                                         "--resume --tag X of a run that recorded nothing yet "
                                                         "(stopped as it started, or never started) starts it, "
                                                         "saying so: a retry loop of run --tag X --resume always "
                                                         "gets going")
    parser.addoption("--rerun", default=None, metavar="WHAT", type=rerun_words,
                     help="with --resume: run again those of the run that crashed, were inconclusive (their "
                          "expectation within the noise) or were interrupted (comma-separated, e.g. --rerun "
                          "crashed,inconclusive); each runs under a new number, its earlier result kept")
    parser.addsetting("state_dir", default=".autoresearch", check=inside,
                      help="folder (relative to the project root) for the run's worktree, logs and state; "
                           "git-ignored through .git/info/exclude")


def rerun_words(value: str) -> tuple[str, ...]:
    """--rerun's words, checked: crashed, inconclusive, interrupted."""
    from autoresearch.session import RERUN

    words = tuple(w.strip() for w in value.split(",") if w.strip())
    bad = [w for w in words if w not in RERUN] or ([] if words else [value])
    if bad:
        raise UsageError(f"--rerun {value}: {bad[0]!r} is not one of {', '.join(RERUN)} (comma-separated)")
    return words


#: What ended a command, by type, and its exit code: the first that matches decides.
EXIT_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (KeyboardInterrupt, ExitCode.INTERRUPTED), (Terminated, ExitCode.TERMINATED),
    (OutputClosed, ExitCode.OUTPUT_CLOSED), (BrokenPipeError, ExitCode.OUTPUT_CLOSED),
    (UsageError, ExitCode.USAGE_ERROR), (GitError, ExitCode.STOPPED),
    (OSError, ExitCode.STOPPED),  # a full disk, a read-only folder: stop cleanly, lose nothing
)
STOPS = (KeyboardInterrupt, Terminated)


class InRun(BaseException):
    """What ended a run once it was open, on its way to the guard (the session finished with it)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


def exit_code(exc: BaseException) -> int:
    """The exit code for whatever ended a command, by its type (:data:`EXIT_CODES`). A stop
    (SIGINT, SIGTERM) anywhere in its context wins: a failure while a stop was being cleaned up
    (a git lock left by an earlier kill) still ends the command as that stop."""
    if isinstance(exc, InRun):
        exc = exc.cause
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, STOPS):
            exc = cause
            break
        seen.add(id(cause))
        cause = cause.__context__
    if isinstance(exc, SystemExit):  # argparse's --version
        return ExitCode.USAGE_ERROR if isinstance(exc.code, str) else int(exc.code or 0)
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), ExitCode.INTERNAL_ERROR)


def ending(exc: BaseException) -> int:
    """How a command ended: its exit code (:func:`exit_code`), and one line on stderr for a user's
    error or a failure (a traceback only for a bug in autoresearch or a plugin)."""
    code, running = exit_code(exc), isinstance(exc, InRun)
    exc = exc.cause if isinstance(exc, InRun) else exc
    again = "; the experiment in progress was not recorded and runs again: fix this, then continue with --resume"
    if isinstance(exc, (OutputClosed, BrokenPipeError)):
        silence_stdout()
    elif isinstance(exc, UsageError):
        error(str(exc))
    elif isinstance(exc, GitError):
        error(f"{exc}" + (again if running else ""))
    elif isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        error(f"{exc.strerror or exc}{where}" + (again if running else ""))
    elif code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED) and not isinstance(exc, STOPS):
        error(f"{type(exc).__name__} while stopping: {exc}", prefix="note: ")  # the stop decides the code
    elif code == ExitCode.INTERNAL_ERROR:
        import traceback  # here: only a bug needs it, and it costs every command ~4 ms at start

        traceback.print_exception(exc)
        error("internal error (the traceback above is a bug in autoresearch or a plugin)", prefix="")
    return code


def error(message: str, prefix: str = "error: ") -> None:
    try:
        print(f"autoresearch: {prefix}{message}", file=sys.stderr)
    except OSError:
        pass


def silence_stdout() -> None:
    """The reader of stdout went away: point it at /dev/null so no later write or flush fails."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file behind sys.stdout: nothing to do
        pass


def guard(fn: Callable[[], int]) -> int:
    """Run a command and map how it ends to its exit code: the one place that does, for every
    command. A stop raises only in here (interrupts.armed); one that a clean-up kept for later
    (interrupts.deferred) still ends the command as that stop."""
    try:
        with interrupts.armed():
            status = fn()
            sys.stdout.flush()
    except BaseException as exc:
        status = ending(exc)
    stop = interrupts.take()
    if stop is not None and status not in (ExitCode.INTERRUPTED, ExitCode.TERMINATED, ExitCode.OUTPUT_CLOSED):
        status = ending(stop)
    return status


def check_outputs(config: Any) -> None:
    """What a run needs before it writes anything (the settings' places were checked as they were read,
    checks.check_layout): the linked data exists, the command's placeholders can be filled, the state
    folder is one of its own, and every plugin's preflight."""
    for name in config.get("link") or []:  # what the workload needs that git ignores: there before a branch is
        if not os.path.lexists(config.rootdir / name):
            raise UsageError(f"link: {name} does not exist in {config.rootdir}: create it first (run your data "
                             "preparation), or take it out of link")
    from autoresearch.execute import command

    command(config)  # its placeholders can be filled ({budget_steps} needs budget_steps)
    check_state_dir(config)
    config.hook.autoresearch_preflight(config=config)


def wrap_session(config: Any, doit: Callable[[Any, Session], None]) -> int:
    """Run a session around `doit` (the run loop); returns its exit code, or raises what ended it
    (cli's guard maps that to the exit code)."""
    from autoresearch.session import Session

    return _session(config, Session(config), doit)


def _session(config: Any, session: Session, doit: Callable[[Any, Session], None]) -> int:
    from autoresearch.collect import collect_session, relpath
    from autoresearch.listing import show_collection

    errors = collect_session(session)
    if errors:
        for err in errors:
            print(f"ERROR {err}", file=sys.stderr)
        print(f"{len(errors)} error{'s' if len(errors) > 1 else ''} during collection: nothing ran", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if config.getoption("rerun") and not session.resume:
        raise UsageError(f"--rerun {','.join(config.getoption('rerun'))}: it re-runs experiments of a run being "
                         "continued (add --resume)")
    if config.getoption("collect_only"):
        show_collection(config, session.items, session)
        return ExitCode.OK if session.items else ExitCode.NO_HYPOTHESES_COLLECTED
    if not session.items and not config.getoption("watch", False):
        where = ", ".join(relpath(p, config.rootdir) for p in session.paths)
        print(f"no hypotheses collected from {where} (write .toml or .py hypothesis files, "
              "e.g. with autoresearch new)", file=sys.stderr)
        return ExitCode.NO_HYPOTHESES_COLLECTED
    check_outputs(config)
    select_run(session)  # read-only: a run that cannot start leaves nothing behind, not even a lock file
    with Lock(config.state_dir / "lock", session.tag):
        open_run(session)
        status: int = ExitCode.INTERNAL_ERROR
        failure: BaseException | None = None
        try:
            config.hook.autoresearch_sessionstart(session=session)
            if not session.initial_commit:
                session.record_opening()
            for report in session.unlogged:  # done, but the runner was killed before it was logged
                config.hook.autoresearch_experiment_logreport(report=report)
                session.record_logged(report)
            doit(config, session)
            status = ExitCode.STOPPED if session.shouldstop else ExitCode.OK
        except BaseException as exc:  # the session finishes with it, then the guard says what it was
            failure, status = exc, exit_code(exc)
        finally:
            if session.shouldstop:
                error(session.shouldstop, prefix="stopped: ")
            with interrupts.deferred():  # a second Ctrl-C does not cut the clean-up short
                try:
                    config.hook.autoresearch_sessionfinish(session=session, exitstatus=status)
                except BaseException as exc:
                    if status == ExitCode.OK:
                        failure = exc
        if failure is not None:
            raise InRun(failure) from None
        return status


def select_run(session: Session, quiet: bool = False) -> None:
    """Which run this is (``--resume`` without ``--tag``: the latest), and whether it can start.

    ``--resume --tag X`` of a run that recorded nothing (no ledger: a stop as it started, before
    its first record, or none at all) starts it, with a note (unless `quiet`); ``--resume`` alone
    with no run to continue is refused."""
    from autoresearch.session import check_tag

    config = session.config
    current = config.state_dir / "current"
    if session.resume and not config.getoption("tag") and current.is_file():
        latest = current.read_text(errors="replace").strip()
        if latest:
            session.tag = check_tag(latest)
    exists = session.ledger.exists()
    if exists and not session.resume:
        raise UsageError(f"run tag {session.tag!r} already exists; continue it with --resume, or start "
                         f"a new run with --tag NAME")
    runs = sorted(p.name for p in (config.state_dir / "runs").glob("*") if p.is_dir() and p.name != session.tag)
    if session.resume and not exists and config.getoption("tag"):
        if not quiet:
            error(f"run {session.tag!r} has recorded nothing yet (stopped as it started, or never started): "
                  f"starting it (other runs here: {', '.join(runs) or 'none'})", prefix="note: ")
    elif session.resume and not session.run_dir.is_dir():  # a folder without a ledger: killed at its start
        raise UsageError(f"no run tagged {session.tag!r} to resume (runs here: {', '.join(runs) or 'none'})")


def open_run(session: Session) -> None:
    """Start a new run folder for the tag, or load the one being resumed (under the lock)."""
    from autoresearch import procs
    from autoresearch.ledger import atomic_write
    from autoresearch.loop import resolve_workers

    select_run(session, quiet=True)  # again, now that no other runner can change the answer
    session.workers, session.devices = resolve_workers(session.config)
    session.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(session.config.state_dir / "current", session.tag + "\n")
    session.ledger.begin()
    if session.ledger.exists():
        session.ledger.repair()
        session.load()
    stopped = procs.kill_marked(session.run_dir)  # what a killed runner left training
    if stopped:
        error(f"stopped {len(stopped)} process{'es' if len(stopped) > 1 else ''} a stopped runner left running "
              f"(pid {', '.join(map(str, stopped))})", prefix="note: ")


