"""Stops as exceptions: Ctrl-C, SIGTERM and a closed output, deferred inside critical sections.

The session wrapper installs the handlers explicitly, so Ctrl-C works even in a runner started
with SIGINT ignored (``autoresearch run &`` in a script). A stop raises at once, except inside a
critical section (a git command, the ledger's commit point and what renders from it), where it
waits until the section ends: a half-written commit or record is never left by our own hand.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from autoresearch.errors import Terminated

_depth = 0
_pending: BaseException | None = None
_previous: dict[int, Any] = {}
_installed = 0  # install() calls not yet matched by restore(): the outermost one restores
_closed = False  # the command is over: a stop is only recorded


def _handler(signum: int, frame: Any) -> None:
    interrupt(KeyboardInterrupt() if signum == signal.SIGINT else Terminated())


def install() -> None:
    """Turn SIGINT into KeyboardInterrupt and SIGTERM into Terminated, whatever was inherited.

    Nested calls are counted; the handlers in place before the outermost one come back with its
    matching :func:`restore`.
    """
    global _pending, _depth, _installed
    _installed += 1
    if _installed > 1:
        return
    _pending, _depth = None, 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        _previous[signum] = signal.signal(signum, _handler)


def restore() -> None:
    global _installed
    _installed = max(0, _installed - 1)
    if _installed:
        return
    for signum, handler in _previous.items():
        signal.signal(signum, handler)
    _previous.clear()


def close() -> None:
    """The command is over and its exit code decided: from now on a stop changes nothing.

    The signals are then ignored, not just recorded: while the interpreter shuts down it puts
    back the default action of any signal with a Python handler, which would end the process by
    the signal instead of with the exit code already decided.
    """
    global _closed
    _closed = True
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def interrupt(exc: BaseException) -> None:
    """Stop the runner with `exc`: now, or at the end of the critical section it is in."""
    global _pending
    if _depth or _closed:
        _pending = _pending or exc
        return
    raise exc


def pending() -> BaseException | None:
    return _pending


@contextmanager
def critical() -> Iterator[None]:
    """A section no stop interrupts: one that arrives meanwhile is raised when it ends.

    Signals reach the main thread only; in a worker thread (several workers) a section needs no
    guard, and the main thread stops the workers itself (``session.stopping``).
    """
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if not _depth and _pending is not None:
        exc, _pending = _pending, None
        raise exc


@contextmanager
def deferred() -> Iterator[None]:
    """Like :func:`critical`, but a stop that arrives meanwhile is kept, not raised (see pending())."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
