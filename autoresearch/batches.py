"""The runs of one measurement started at once with -n N (plugins/workers.py): each a view of
the experiment with its own seed, log and worker, gathered in a batch its measurement waits for;
and the wasted runs a run's ledger records.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from autoresearch.reports import Cause, RunResult
from autoresearch.scheduler import Waste

if TYPE_CHECKING:
    from autoresearch.session import Experiment


class RunView:
    """One run of an experiment on a worker of its own: the experiment, with this run's seed, log
    and worker (a run its decision needs, started beside the others)."""

    def __init__(self, exp: Experiment, index: int, seed: int) -> None:
        self.__dict__.update(_exp=exp, index=index, seed=seed, smoke=None, worker=exp.worker, workdir=exp.workdir)

    def __getattr__(self, name: str):
        return getattr(self._exp, name)

    @property
    def log_path(self):
        return self._exp.session.run_dir / "logs" / f"{self._exp.label}.{self.index}.log"


class Batch:
    """Runs one measurement asked for at once; it waits until every one is over (or will not run)."""

    def __init__(self, views: list[RunView]) -> None:
        self.views = views
        self.results: list[RunResult | None] = [None] * len(views)
        self.started = 0
        self.left = len(views)
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def finish(self, i: int, result: RunResult) -> None:
        with self.lock:
            self.results[i] = result
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def drop(self, why: str) -> None:
        """The runs not started will not be: each a run with no result."""
        while True:
            with self.lock:
                if self.started >= len(self.views):
                    return
                i, self.started = self.started, self.started + 1
            view = self.views[i]
            self.finish(i, RunResult(None, 0.0, str(view.log_path), seed=view.seed, cause=Cause.INTERRUPTED,
                                     message=f"not run: {why}"))


def waste_of(run_dir) -> Waste | None:
    """A run's wasted runs, summed over its ledger's records (None: none recorded, as with -n 1)."""
    import json

    path = run_dir / "ledger.jsonl"
    total, found = Waste(), False
    if not path.is_file():
        return None
    for line in path.read_bytes().splitlines():
        if b'"wasted"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "wasted":
            found = True
            for k in ("stale", "cancelled", "surplus", "runs"):
                setattr(total, k, getattr(total, k) + int(entry.get(k, 0)))
    return total if found else None
