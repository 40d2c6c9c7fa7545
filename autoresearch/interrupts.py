"""Stops as exceptions: Ctrl-C, SIGTERM and a closed output, deferred inside critical sections.

The handlers are installed once, by the entry point's first instruction (``__main__``) or, for a
caller in-process, by ``cli.main``; whatever the process inherited (SIGINT ignored by
``autoresearch run &``, the signals blocked) no longer applies. A stop raises only while the
command itself runs (:func:`armed`, cli's guard): one that arrives while the command starts
waits for it and is raised as it begins, one after it is over changes nothing. Inside a critical
section (a git command, the ledger's commit point and what renders from it) a stop waits until
the section ends: a half-written commit or record is never left by our own hand.

A stop Python loses is raised again at the next checkpoint (:func:`checkpoint`; the end of every
critical section is one): CPython runs signal handlers inside some C code that then drops their
exception (``compile()`` of a module imported without its ``.pyc``: PYTHONDONTWRITEBYTECODE, an
editable install; a ``__del__``; a weakref callback), and the command would go on as if no stop
had come.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from autoresearch.errors import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_depth = 0
_pending: BaseException | None = None
_previous: dict[int, Any] = {}
_armed = False  # the command is running: a stop raises (outside critical sections)
_raised: BaseException | None = None  # the last stop raised: kept in case a place Python cannot raise from swallowed it
_swallowed: BaseException | None = None  # a stop the unraisable hook saw: Python dropped it
_hook: Any = None  # the unraisable hook in place before install()


def _unraisable(unraisable: Any) -> None:
    """A stop raised where Python cannot raise (a weakref callback of an import, a __del__) is
    not printed as "Exception ignored": it is raised again at the next checkpoint, and take()
    still returns it, so the command ends as that stop."""
    global _swallowed
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
        _swallowed = unraisable.exc_value
        return
    (_hook or sys.__unraisablehook__)(unraisable)


def _handler(signum: int, frame: Any) -> None:
    interrupt(KeyboardInterrupt() if signum == signal.SIGINT else Terminated())


def _raise(exc: BaseException) -> None:
    global _raised
    _raised = exc
    raise exc


def _lost(exc: BaseException) -> bool:
    """Whether Python dropped the stop `exc`: the unraisable hook saw it, or it never reached a
    frame beyond the handler's (C code that ran the handler, compile() of an import, cleared it;
    a stop on its way up has the frames it passed through in its traceback)."""
    tb = exc.__traceback__
    return exc is _swallowed or tb is None or tb.tb_frame.f_code in _OURS


def install() -> bool:
    """Turn SIGINT into KeyboardInterrupt and SIGTERM into Terminated, whatever was inherited.

    Once per process: returns True for the call that installed them (it restores or closes
    them), False when they are in place already.
    """
    global _pending, _depth, _raised, _hook, _swallowed
    if _previous:
        return False
    _pending, _depth, _raised, _swallowed = None, 0, None, None
    for signum in SIGNALS:
        _previous[signum] = signal.signal(signum, _handler)
    _hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    # blocked signals (a supervisor's mask) reach the handler from now on: a stop that came before is pending
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(SIGNALS))
    return True


def restore() -> None:
    """Put back the handlers that were in place before :func:`install` (an in-process caller's)."""
    global _pending, _raised, _swallowed
    for signum, handler in _previous.items():
        signal.signal(signum, handler)
    _previous.clear()
    _pending = _raised = _swallowed = None
    if sys.unraisablehook is _unraisable:
        sys.unraisablehook = _hook or sys.__unraisablehook__


def close() -> None:
    """The process is ending with its exit code decided: from now on a stop changes nothing.

    The signals are then ignored, not just recorded: while the interpreter shuts down it puts
    back the default action of any signal with a Python handler, which would end the process by
    the signal instead of with the exit code already decided.
    """
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def armed() -> Iterator[None]:
    """The command itself: a stop raises in here. One that came while the command started (the
    imports, the plugins) is raised on entry; after the block a stop is only recorded (see take())."""
    global _armed, _pending
    _armed = True
    try:
        if _pending is not None:
            exc, _pending = _pending, None
            _raise(exc)
        yield
    finally:
        _armed = False


def interrupt(exc: BaseException) -> None:
    """Stop the runner with `exc`: now, or at the end of the critical section it is in."""
    global _pending
    if _depth or not _armed:
        _pending = _pending or exc
        return
    _raise(exc)


_OURS = (_handler.__code__, interrupt.__code__, _raise.__code__)  # the frames a stop starts its way up in


def checkpoint() -> None:
    """Raise here a stop that Python lost (see the module's docstring), if there is one: the
    command goes on only until its next checkpoint. Nothing in a worker's thread, in a critical
    or deferred section, or outside the command."""
    global _swallowed
    exc = _raised
    if (exc is not None and _armed and not _depth and _lost(exc)
            and threading.current_thread() is threading.main_thread()):
        _swallowed = None
        raise exc


def pending() -> BaseException | None:
    return _pending


def take() -> BaseException | None:
    """The stop that arrived and was not raised (in a deferred section, or after the command), or
    the last one raised (which something may have swallowed), cleared."""
    global _pending, _raised, _swallowed
    exc, _pending, _raised, _swallowed = _pending or _raised, None, None, None
    return exc


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
    if not _depth and _armed and _pending is not None:
        exc, _pending = _pending, None
        _raise(exc)
    checkpoint()


@contextmanager
def deferred() -> Iterator[None]:
    """Like :func:`critical`, but a stop that arrives meanwhile is kept, not raised (see take())."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
