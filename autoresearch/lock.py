"""One runner per repository: the lock, and who holds it (written and read as data, here only)."""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError


class Lock:
    """One runner per repository: an flock the kernel releases even after SIGKILL. The file holds
    its holder as JSON (pid, tag, since), written and read here only (:meth:`read`)."""

    def __init__(self, path: Path, tag: str) -> None:
        self.path, self.tag, self.fd = path, tag, -1

    @staticmethod
    def read(path: Path, wait: float = 1.0) -> dict[str, Any]:
        """Who holds the lock at `path`, as its holder wrote it: ``{"pid", "tag", "since"}``, or {}
        (its holder may be writing it right now: wait up to `wait` seconds for it)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                holder = json.loads(path.read_bytes() or b"null")
            except (OSError, ValueError, RecursionError):
                holder = None
            if isinstance(holder, dict) or time.monotonic() >= deadline:
                return holder if isinstance(holder, dict) else {}
            time.sleep(0.02)

    @staticmethod
    def held(path: Path) -> bool:
        """Whether a runner holds the lock now (the kernel releases it with its holder, however it died)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def __enter__(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            holder = self.read(self.path)
            who = (f"pid {holder.get('pid')}, tag {holder.get('tag')}, since {holder.get('since')}" if holder
                   else "unknown")
            raise UsageError(f"another autoresearch run holds {self.path} ({who}); wait for it to "
                             "finish or stop it first") from None
        info = json.dumps(dict(pid=os.getpid(), tag=self.tag, since=f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}"))
        os.pwrite(self.fd, info.encode(), 0)
        os.ftruncate(self.fd, len(info.encode()))
        return self

    def __exit__(self, *exc: object) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)
