"""Errors a user can cause: each is reported as one line, never as a traceback."""
from __future__ import annotations


class UsageError(Exception):
    """Bad command-line arguments, settings or repository state; the message says what to do."""


class CollectError(Exception):
    """An invalid hypothesis file, reported as ``path:line: what is wrong (what is allowed)``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


class PatchError(Exception):
    """A patch that does not apply to the file it targets."""


class ExpectationError(Exception):
    """An expectation that does not parse."""
