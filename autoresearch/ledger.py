"""The ledger: the run's one store. Every output (results.tsv, results.jsonl, the journal's
state, the lessons, JUnit XML, ``status``, ``report``) renders from it or from
``session.history``, which is read from it.

One JSON object a line, appended and fsynced before the runner moves on:

    {"event": "session", "initial_commit": ..., "protected": {...}}   once, when the run opens
    {"event": "start", "seq": 3, "key": ..., "nodeid": ..., "time": ...}   an experiment begins
    {"event": "done", "report": {...}, "tip": ...}   it is finished: the commit point

An experiment is finished exactly when its "done" line is on disk; a "start" without one is what a
killed runner left in flight, and runs again under the same number. A torn last line (a kill
mid-write) is ignored, so it too runs again.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoresearch.reports import Report


@dataclass
class Replay:
    """The state a ledger describes."""

    history: list[Report] = field(default_factory=list)  # finished experiments, one per number
    pending: dict[str, Any] | None = None  # the last "start" with no "done": in flight when killed
    tip: str = ""  # the commit the branch should be at
    initial_commit: str = ""
    protected: dict[str, str | None] = field(default_factory=dict)


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def replay(self) -> Replay:
        state = Replay()
        started: dict[int, dict[str, Any]] = {}
        by_seq: dict[int, Report] = {}
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
            elif event == "session":
                state.initial_commit = entry.get("initial_commit", "")
                state.protected = entry.get("protected", {})
                state.tip = state.tip or state.initial_commit
        state.history = [by_seq[k] for k in sorted(by_seq)]
        state.pending = max(started.values(), key=lambda e: e["seq"]) if started else None
        return state
