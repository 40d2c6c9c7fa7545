"""The ledger: the run's one store. Every output (results.tsv, results.jsonl, the journal's
state, the lessons, JUnit XML, ``status``, ``report``) renders from it or from
``session.history``, which is read from it.

One JSON object a line, appended and fsynced before the runner moves on:

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

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


_append = threading.Lock()  # workers' threads write "start" lines while the main thread writes "done"


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def repair(self) -> None:
        """Cut off a torn last line (a kill mid-write), so the next line starts on its own."""
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, default=str) + "\n"
        with _append, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def replay(self) -> Replay:
        state = Replay()
        started: dict[int, dict[str, Any]] = {}
        by_seq: dict[int, Report] = {}
        logged: set[int] | None = None  # None for a ledger written before "logged" events existed
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                event = entry["event"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line from a kill: that experiment runs again
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
            elif event == "session":
                logged = set() if entry.get("format", 1) >= 2 else None
                state.initial_commit = entry.get("initial_commit", "")
                state.protected = entry.get("protected", {})
                state.tip = state.tip or state.initial_commit
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
