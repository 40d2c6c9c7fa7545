"""Stops as exceptions: Ctrl-C, SIGTERM and a closed output, deferred inside critical sections.

The session wrapper installs the handlers explicitly, so Ctrl-C works even in a runner started
with SIGINT ignored (``autoresearch run &`` in a script). A stop raises at once, except inside a
critical section (a git command, the ledger's commit point and what renders from it), where it
waits until the section ends: a half-written commit or record is never left by our own hand.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator

from autoresearch.errors import Terminated

_depth = 0
_pending: BaseException | None = None
_previous: dict[int, Any] = {}


def _handler(signum: int, frame: Any) -> None:
    interrupt(KeyboardInterrupt() if signum == signal.SIGINT else Terminated())


def install() -> None:
    """Turn SIGINT into KeyboardInterrupt and SIGTERM into Terminated, whatever was inherited."""
    global _pending, _depth
    _pending, _depth = None, 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        _previous[signum] = signal.signal(signum, _handler)


def restore() -> None:
    for signum, handler in _previous.items():
        signal.signal(signum, handler)
    _previous.clear()


def interrupt(exc: BaseException) -> None:
    """Stop the runner with `exc`: now, or at the end of the critical section it is in."""
    global _pending
    if _depth:
        _pending = _pending or exc
        return
    raise exc


def pending() -> BaseException | None:
    return _pending


@contextmanager
def critical() -> Iterator[None]:
    """A section no stop interrupts: one that arrives meanwhile is raised when it ends."""
    global _depth, _pending
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
