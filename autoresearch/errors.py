"""Every exception of autoresearch, in one module that imports nothing of ours.

Errors a user can cause are reported as one line, never as a traceback; the stops
(:class:`Terminated`, :class:`OutputClosed`) are ``BaseException`` so that, like
``KeyboardInterrupt``, no ``except Exception`` swallows them on their way to the session wrapper.
"""
from __future__ import annotations


class UsageError(Exception):
    """Bad command-line arguments, settings or repository state; the message says what to do."""


class CollectError(Exception):
    """An invalid hypothesis file, reported as ``path:line: what is wrong (what is allowed)``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


class PatchError(Exception):
    """A patch that does not apply to the file it targets; `kind` names the patch kind (``set``) or
    hypothesis key (``file``) at fault and `key` the key in its table (``LR`` of ``set.LR``), when one is."""

    def __init__(self, message: str, kind: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.key = kind, key


class ConflictError(PatchError):
    """A patch that applied to the code it was collected against, but not to the branch tip, which
    kept experiments have changed since."""


class ExpectationError(Exception):
    """An expectation that does not parse."""


class GitError(Exception):
    """A git command failed during a run: not the user's usage, but a stop with git's own words."""

    def __init__(self, args: tuple[str, ...] | list[str], cwd: object, message: str) -> None:
        super().__init__(f"git {' '.join(args)} failed in {cwd}: {message}")
        self.args_, self.cwd, self.message = tuple(args), cwd, message


class Terminated(BaseException):
    """Raised in the runner by SIGTERM, so that cleanup runs as for Ctrl-C."""


class OutputClosed(BaseException):
    """Standard output was closed by its reader (``autoresearch run | head``): stop as for Ctrl-C."""


class Stopped(BaseException):
    """Raised in a worker's thread when the session stops (Ctrl-C, SIGTERM): its run was cut short."""
