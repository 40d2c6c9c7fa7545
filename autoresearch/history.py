"""The session's history, indexed: what the protocol asks of it after every experiment (a commit's
reports and runs, the latest report of a hypothesis, of a name, each commit's values of a metric)
answered from dictionaries kept up to date as reports are recorded, in time that does not grow
with the number of experiments.

``session.history`` stays the one list of reports (by number) that plugins read; the
:class:`Index` follows it. A report recorded after every earlier one (the usual case) is added
in place; anything else (an interrupted experiment's report replaced on --resume, a report out of
order) rebuilds the index from the list, which is what a fresh index would hold.
"""
from __future__ import annotations

import threading
from typing import Iterable

from autoresearch.reports import MEASURED, Report, Status

FULL = 40  # the length of a commit id (git's SHA-1, or a scratch copy's content id)


class Index:
    """Lookups into a list of reports (sorted by number); :meth:`add` a report appended to it. Of
    two reports of one key or name, the later in the list is the latest."""

    def __init__(self, reports: Iterable[Report] = ()) -> None:
        self.by_commit: dict[str, list[Report]] = {}  # reports of each commit, by number
        self.latest_by_key: dict[str, Report] = {}  # each hypothesis's latest result (not interrupted)
        self.latest_by_name: dict[str, Report] = {}  # each name's latest result (not interrupted)
        self.measured: dict[str, dict[str, list[float]]] = {}  # metric -> commit -> values (drift.groups)
        self.last_seq = -1  # the highest number so far
        self.count = 0  # reports added
        self.lock = threading.RLock()  # workers' threads read while the main thread records
        self._repeated: dict[str, tuple[int, list[list[float]]]] = {}  # metric -> (count, repeated groups)
        self.short = False  # some report's commit is not a full id: lookups by prefix, as before
        self.baseline_kept = False
        for r in reports:
            self._add(r)

    def add(self, r: Report, history: list[Report] | None = None) -> None:
        """A report appended to the list (numbered after every report in it, as a rule); with
        `history`, appended to it here, so that no reader sees it in one and not the other."""
        with self.lock:
            if history is not None:
                history.append(r)
            self._add(r)

    def _add(self, r: Report) -> None:
        self.last_seq = max(self.last_seq, r.seq)
        self.count += 1
        if r.commit:
            self.by_commit.setdefault(r.commit, []).append(r)
            self.short = self.short or len(r.commit) != FULL
        if r.status != Status.INTERRUPTED:
            if r.key:
                self.latest_by_key[r.key] = r
            self.latest_by_name[r.name] = r
        self.baseline_kept = self.baseline_kept or (r.is_baseline and r.status == Status.KEEP)
        if r.status in MEASURED and r.commit:
            for metric, groups in self.measured.items():
                groups.setdefault(r.commit, []).extend(values(r, metric))

    def reports_of(self, commit: str, history: list[Report]) -> list[Report]:
        """The reports of `commit`: those whose commit it is, or (for a short id) begins with."""
        if not commit:
            return []
        if len(commit) == FULL and not self.short:
            return self.by_commit.get(commit, [])
        return [r for r in history if r.commit and (r.commit.startswith(commit) or commit.startswith(r.commit))]

    def groups(self, metric: str, history: list[Report]) -> dict[str, list[float]]:
        """Each commit's values of `metric` over the measured reports, by first appearance: what
        :func:`autoresearch.drift.groups` makes of the history (without its last, extra group)."""
        with self.lock:
            groups = self.measured.get(metric)
            if groups is None:
                groups = self.measured[metric] = {}
                for r in history[:self.count]:  # what this index holds (a report being added joins it after)
                    if r.status in MEASURED and r.commit:
                        groups.setdefault(r.commit, []).extend(values(r, metric))
            return groups

    def repeated(self, metric: str, history: list[Report]) -> list[list[float]]:
        """:meth:`groups` of more than one value, in the same order: all that σ and the robust σ are
        made of (a commit run once counts for nothing in either); made once per report added."""
        with self.lock:
            cached = self._repeated.get(metric)
            if cached is None or cached[0] != self.count:
                groups = self.groups(metric, history).values()
                cached = self._repeated[metric] = (self.count, [list(g) for g in groups if len(g) > 1])
            return cached[1]


def values(r: Report, metric: str) -> list[float]:
    return [x.metrics[metric] for x in r.runs if x.ok and metric in x.metrics]
