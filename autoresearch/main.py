"""The session wrapper, as pytest's ``main.wrap_session``: collection, the lock, the signal
handlers, opening or resuming the run, ``sessionstart`` / ``sessionfinish``, and the exit code.

    wrap_session
      collect (an error: exit 4, nothing written)
      lock -> open or resume the run -> sessionstart
        autoresearch_runloop          (loop.py: the baseline, then the queue)
          autoresearch_experiment_protocol   (protocol.py: setup -> run -> verdict -> report -> teardown)
      sessionfinish, whatever ended the session

Every way a command can end maps to its exit code in one place, :func:`exit_code`.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from autoresearch import hookimpl, interrupts
from autoresearch.checks import check_output, check_state_dir  # noqa: F401 (check_output: cli.py's)
from autoresearch.config import inside
from autoresearch.errors import GitError, OutputClosed, Terminated, UsageError
from autoresearch.reports import ExitCode
from autoresearch.session import Session, check_tag, default_tag


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("--tag", default=None, help="run tag: the branch is autoresearch/TAG (default: today, e.g. "
                                                  f"{default_tag()})")
    parser.addoption("--resume", action="store_true", help="continue the run of an existing tag (--tag, default "
                                                         "the latest run) instead of starting a new one")
    parser.addsetting("state_dir", default=".autoresearch", check=inside,
                      help="folder (relative to the project root) for the run's worktree, logs and state; "
                           "git-ignored through .git/info/exclude")


def exit_code(exc: BaseException, running: bool = False) -> int:
    """The exit code for whatever ended a command; one line on stderr for a user's error."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, Terminated):
        return ExitCode.TERMINATED
    if isinstance(exc, (OutputClosed, BrokenPipeError)):
        silence_stdout()
        return ExitCode.OUTPUT_CLOSED
    if isinstance(exc, UsageError):
        error(str(exc))
        return ExitCode.USAGE_ERROR
    if isinstance(exc, GitError):
        error(f"{exc}" + ("; the experiment in progress was not recorded and runs again: fix this, then "
                          "continue with --resume" if running else ""))
        return ExitCode.STOPPED
    if isinstance(exc, OSError):  # a full disk, a read-only folder: stop cleanly, lose nothing
        where = f" ({exc.filename})" if exc.filename else ""
        error(f"{exc.strerror or exc}{where}" + ("; the experiment in progress was not recorded and runs again: "
                                                  "fix this, then continue with --resume" if running else ""))
        return ExitCode.STOPPED
    if isinstance(exc, SystemExit):
        return int(exc.code or 0) if not isinstance(exc.code, str) else ExitCode.USAGE_ERROR
    traceback.print_exception(exc)
    error("internal error (the traceback above is a bug in autoresearch or a plugin)", prefix="")
    return ExitCode.INTERNAL_ERROR


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
    """Run a command, mapping how it ends to an exit code (status, new, report, --help)."""
    try:
        status = fn()
        sys.stdout.flush()
        return status
    except BaseException as exc:
        return exit_code(exc)


class Lock:
    """One runner per repository: an flock the kernel releases even after SIGKILL."""

    def __init__(self, path: Path, tag: str) -> None:
        self.path, self.tag, self.fd = path, tag, -1

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it (it may be writing it right now: wait a little)."""
        deadline = time.monotonic() + 1.0
        while True:
            text = self.path.read_text(errors="replace").strip() if self.path.exists() else ""
            if text or time.monotonic() > deadline:
                return text or "unknown"
            time.sleep(0.02)

    def __enter__(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UsageError(f"another autoresearch run holds {self.path} ({self.holder()}); wait for it to "
                             "finish or stop it first") from None
        info = f"pid {os.getpid()}, tag {self.tag}, since {dt.datetime.now():%Y-%m-%d %H:%M:%S}".encode()
        os.pwrite(self.fd, info, 0)
        os.ftruncate(self.fd, len(info))
        return self

    def __exit__(self, *exc: object) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)


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
    """Run a session around `doit` (the run loop); returns the exit code."""
    interrupts.install()
    session = None
    try:
        session = Session(config)
        return _session(config, session, doit)
    except BaseException as exc:
        return exit_code(exc)
    finally:
        interrupts.restore()


def _session(config: Any, session: Session, doit: Callable[[Any, Session], None]) -> int:
    from autoresearch.collect import collect_session, relpath, show_collection

    errors = collect_session(session)
    if errors:
        for err in errors:
            print(f"ERROR {err}", file=sys.stderr)
        print(f"{len(errors)} error{'s' if len(errors) > 1 else ''} during collection: nothing ran", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if config.getoption("collect_only"):
        show_collection(config, session.items)
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
        try:
            config.hook.autoresearch_sessionstart(session=session)
            if not session.initial_commit:
                session.record_opening()
            for report in session.unlogged:  # done, but the runner was killed before it was logged
                config.hook.autoresearch_experiment_logreport(report=report)
                session.record_logged(report)
            doit(config, session)
            status = ExitCode.STOPPED if session.shouldstop else ExitCode.OK
        except BaseException as exc:
            status = exit_code(exc, running=True)
        finally:
            if session.shouldstop:
                error(session.shouldstop, prefix="stopped: ")
            with interrupts.deferred():  # a second Ctrl-C does not cut the clean-up short
                try:
                    config.hook.autoresearch_sessionfinish(session=session, exitstatus=status)
                except BaseException as exc:
                    status = exit_code(exc, running=True) if status == ExitCode.OK else status
        return status


def select_run(session: Session) -> None:
    """Which run this is (``--resume`` without ``--tag``: the latest), and whether it can start."""
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
    if session.resume and not session.run_dir.is_dir():  # a folder without a ledger: killed at its start
        runs = sorted(p.name for p in (config.state_dir / "runs").glob("*") if p.is_dir())
        raise UsageError(f"no run tagged {session.tag!r} to resume (runs here: {', '.join(runs) or 'none'})")


def open_run(session: Session) -> None:
    """Start a new run folder for the tag, or load the one being resumed (under the lock)."""
    from autoresearch import procs

    from autoresearch.loop import resolve_workers

    select_run(session)  # again, now that no other runner can change the answer
    session.workers, session.devices = resolve_workers(session.config)
    session.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_text(session.config.state_dir / "current", session.tag + "\n")
    if session.ledger.exists():
        session.ledger.repair()
        session.load()
    stopped = procs.kill_marked(session.run_dir)  # what a killed runner left training
    if stopped:
        error(f"stopped {len(stopped)} process{'es' if len(stopped) > 1 else ''} a stopped runner left running "
              f"(pid {', '.join(map(str, stopped))})", prefix="note: ")


def atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
