"""The ledger: the run's one store. Every output (results.tsv, results.jsonl, the journal's
state, the lessons, JUnit XML, ``status``, ``report``) renders from it or from
``session.history``, which is read from it.

One JSON object a line, appended before the runner moves on; the commit point ("done") and the
session's own lines are fsynced at once, "start" and "logged" with the next fsync (a line whose
loss with the machine's power costs repeated work, never a result):

    {"event": "session", "format": 2, "initial_commit": ..., "protected": {...}}   once, at the start
    {"event": "start", "seq": 3, "key": ..., "nodeid": ..., "time": ...}   an experiment begins
    {"event": "done", "report": {...}, "tip": ...}   it is finished: the commit point
    {"event": "logged", "seq": 3}   every plugin has recorded it (results.tsv, the journal, ...)

An experiment is finished exactly when its "done" line is on disk; a "start" without one is what a
killed runner left in flight, and runs again under the same number (as does one done as
"interrupted", by Ctrl-C or SIGTERM: its new report replaces that one). A "done" without "logged" was
finished but not yet recorded everywhere: a resumed run records it (and runs it no more). A torn
last line (a kill mid-write) is cut off when the run resumes, so the experiment runs again.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.interrupts import critical
from autoresearch.reports import Report, Status


@dataclass
class Replay:
    """The state a ledger describes."""

    history: list[Report] = field(default_factory=list)  # finished experiments, one per number
    pending: list[dict[str, Any]] = field(default_factory=list)  # in flight when the last runner stopped
    tip: str = ""  # the commit the branch should be at
    initial_commit: str = ""
    protected: dict[str, str | None] = field(default_factory=dict)
    unlogged: list[Report] = field(default_factory=list)  # finished, not yet recorded by every plugin
    pinned: dict[str, str | None] = field(default_factory=dict)  # the files the last session pinned


_append = threading.Lock()  # workers' threads write "start" lines while the main thread writes "done"
_last: dict[Path, tuple[int, str]] = {}  # each ledger's size and the hash of its last line, as last written


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest() if line else ""


def last_line(path: Path, size: int) -> bytes:
    """The last complete line of the first `size` bytes of a file (without its newline)."""
    with open(path, "rb") as f:
        end, chunk = size, b""
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            chunk = f.read(end - start) + chunk
            cut = chunk.rstrip(b"\n").rfind(b"\n")
            if cut >= 0:
                return chunk.rstrip(b"\n")[cut + 1:]
            end = start
        return chunk.rstrip(b"\n")


class BrokenChain(UsageError):
    """A ledger line that does not follow from the one before it: written outside autoresearch."""


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def begin(self) -> None:
        """A session of this process starts on the ledger: what an earlier one here appended is
        forgotten, so the next append chains onto the file as it is now (verified when read)."""
        with _append:
            _last.pop(self.path, None)

    def repair(self) -> None:
        """Cut off a torn last line (a kill mid-write), so the next line starts on its own."""
        _last.pop(self.path, None)
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def append(self, entry: dict[str, Any], sync: bool = True) -> None:
        """One line, chained to the one before it (``prev``: the SHA-256 of that line's bytes);
        fsynced unless `sync` is False (a line whose loss costs nothing but repeated work)."""
        # a critical section: a stop that landed after the write but before _last moved would leave
        # this process's next append finding the file "changed outside autoresearch"
        with critical(), _append, open(self.path, "ab") as f:
            size = f.tell()
            cached = _last.get(self.path)
            if cached and cached[0] != size:  # this process wrote the last line: someone else wrote since
                raise BrokenChain(f"{self.path}: changed outside autoresearch since its last entry "
                                  f"({cached[0]} bytes then, {size} now): the run's record is damaged and cannot be trusted")
            prev = cached[1] if cached else line_hash(last_line(self.path, size))
            data = (json.dumps({**entry, "prev": prev}, default=str) + "\n").encode()
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
            _last[self.path] = (size + len(data), line_hash(data[:-1]))

    def replay(self) -> Replay:
        state = Replay()
        started: dict[int, dict[str, Any]] = {}
        by_seq: dict[int, Report] = {}
        logged: set[int] | None = None  # None for a ledger written before "logged" events existed
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        prev, chained = "", False
        for number, raw in enumerate(lines, 1):
            try:
                entry = json.loads(raw.decode("utf-8", errors="replace"))
                event = entry["event"]
            except (json.JSONDecodeError, KeyError, TypeError):
                if raw.strip() and number < len(lines) - 1:  # only the last line may be torn (by a kill)
                    raise BrokenChain(f"{self.path}:{number}: not a ledger entry (the record was edited "
                                      "outside autoresearch): the run's record is damaged") from None
                continue  # a torn last line from a kill: that experiment runs again
            chained = chained or "prev" in entry
            if chained and entry.get("prev") != prev:
                raise BrokenChain(f"{self.path}:{number}: the hash chain breaks here (a line was changed, "
                                  "inserted or removed outside autoresearch): the run's record is damaged and cannot be trusted")
            prev = line_hash(raw)
            if event == "start":
                started[entry["seq"]] = entry
            elif event == "done":
                report = Report.from_dict(entry["report"])
                started.pop(report.seq, None)
                by_seq[report.seq] = report
                state.tip = entry.get("tip", state.tip)
                if logged is not None:
                    logged.discard(report.seq)
            elif event == "logged":
                if logged is not None:
                    logged.add(entry["seq"])
            elif event == "pins":
                state.pinned = entry.get("files", {})
            elif event == "session":
                logged = set() if entry.get("format", 1) >= 2 else None
                state.initial_commit = entry.get("initial_commit", "")
                state.protected = entry.get("protected", {})
                state.tip = state.tip or state.initial_commit
        with _append:  # verified as it stands: the next append follows from it, or from nothing else
            if data.endswith(b"\n"):
                _last[self.path] = (len(data), prev)
            else:
                _last.pop(self.path, None)
        state.history = [by_seq[k] for k in sorted(by_seq)]
        if logged is not None:
            state.unlogged = [r for r in state.history if r.seq not in logged]
        # in flight when the last runner stopped: killed (a start with no done) or interrupted
        # (done as such); either runs again under its own number, so the rows keep their order
        for r in state.history:
            if r.status == Status.INTERRUPTED and r.seq not in started:
                started[r.seq] = {"seq": r.seq, "key": r.key, "nodeid": r.nodeid}
        # ... unless it has finished since (under another number): the baseline once kept, a
        # hypothesis once kept, discarded or crashed
        finished = {r.key for r in state.history
                    if r.status == Status.KEEP or (r.key and r.status in (Status.DISCARD, Status.CRASH))}
        state.pending = [started[k] for k in sorted(started) if started[k]["key"] not in finished]
        return state


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` whole: a reader, or a kill, sees the old text or the new, never half of it.

    No fsync: what is written so renders from the ledger (which is fsynced, the one store) or is
    written again at every session's start, so not even a power loss leaves it wrong for long;
    three fsyncs an experiment were a third of the runner's own time on a busy disk. The one
    atomic write of the runner (results, the current run's tag, the MLflow plugin's state)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
