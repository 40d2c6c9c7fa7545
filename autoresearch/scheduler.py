"""The scheduler of ``-n N``: which experiment or run goes to which free worker, and when an
experiment is decided. A pure, event-driven object with no threads, clocks or I/O:
plugins/workers.py drives it with threads and the real executors, bench/bench_scale.py with a
heap of simulated finish times; both run this code.

It is told what happened (an experiment measured, a run asked for or over, a decision made) and
:meth:`Scheduler.step` says what to do next:

    Measure(job, worker)   measure the job on that worker: set it up, its first run (again=True:
                           once more, on the new tip, a stale one or a round's winner carried over)
    Run(job, worker)       one more run of a job already set up (the runs its decision needs run
                           on free workers at once, not one after another on one)
    Cancel(job)            stop its runs: a keep has made it stale
    Decide(job)            decide it now (always the last action of a step: decide, tell
                           :meth:`decided`, step again)

Two schedules (the ``schedule`` setting):

    serial   decisions in dispatch order; a keep makes what was dispatched on the old tip stale:
             it is measured again on the new tip before it is decided. The results are one
             worker's, for any N. A likely keep (want(likely=True)) holds back new dispatches
             until it is decided, and what is decided before it runs its grey zone at once
             (rush); the driver recounts a decision's runs at Decide (repeats.recount) and
             reopen()s it when one worker would have run it more; insert() puts the tip's
             re-measurement before every job in flight.
    rounds   up to ``round_size`` (default N) candidates measured on the same tip; when all are
             measured, the losers are decided, then the best winner (the one a keep would move
             the tip to), then the other winners are measured again on the new tip, as a
             combination with it, in the next round. Throughput, not one worker's results.

A run thrown away is counted as wasted: ``stale`` (finished, on a tip that moved), ``cancelled``
(stopped by a keep mid-way) and ``surplus`` (run ahead of a decision that did not need it).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Callable

from autoresearch.actions import Cancel, Decide, Measure, Release, Resume, Run  # noqa: F401 (what step() says)
from autoresearch.repeats import Repeats, Waste, recount  # noqa: F401 (the scheduler's parts, imported from here)

SCHEDULES = ("serial", "rounds")


@dataclass(frozen=True)
class Item:
    """What the run loop hands over: a hypothesis (None: the baseline) and what scheduling needs."""

    payload: Any
    name: str = ""
    waits: str = ""  # the name of the experiment it builds on, decided first ("" for none)
    floating: bool = True  # built on the tip (baseline "best"): a keep makes it stale


@dataclass(eq=False)
class Job:
    item: Item
    order: float  # dispatch order (a job insert()ed before the others: half a step before)
    version: int  # the tip's version it is built on
    worker: int | None = None  # the worker it holds while it measures (None: none, or lent out)
    state: str = "measuring"  # measuring, paused (rounds), measured, deciding, done, carried
    stale: bool = False  # rounds: to be decided as a discard, stale (a winner carried once already)
    runs: int = 0  # runs its measurement made (told by measured())
    queued: int = 0  # runs asked for, not started
    running: int = 0  # runs started, not over
    cancelled: bool = False
    attempts: int = 1
    winner: bool = False
    charged: bool = False  # its runs are counted as wasted already
    likely: bool = False  # its runs now are a likely keep's confirmation runs
    keeps: bool = True  # measured: the verdict may keep it (serial decides it before dispatching more)
    score: float = 0.0
    payload: Any = None  # the driver's own (plugins/workers.py: the Experiment)

    @property
    def baseline(self) -> bool:
        return self.item.payload is None


class Scheduler:
    """Who runs what next, for `workers` workers (see the module's docstring).

    `judge(job) -> (winner, score)`: rounds only, for a measured job on the tip it was built on:
    whether a keep would move the tip to it, and how good it is (higher is better).
    `spread`: the runs a decision needs go to free workers (False: one after another on the
    job's own worker, as before; the simulator compares both). `ahead`: serial, how many
    experiments may be in flight (default 2N)."""

    def __init__(self, workers: int, schedule: str = "serial", round_size: int = 0,
                 judge: Callable[[Job], tuple[bool, float]] | None = None, spread: bool = True,
                 ahead: int = 0) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule {schedule!r} (allowed: {', '.join(SCHEDULES)})")
        self.workers, self.schedule, self.spread = workers, schedule, spread
        self.round_size = round_size or workers
        self.ahead = ahead or 2 * workers
        self.judge = judge or (lambda job: (False, 0.0))
        self.free: list[int] = list(range(workers))
        self.jobs: list[Job] = []  # in flight (not decided), in dispatch order
        self.requests: list[Job] = []  # a job once per run it asked for: the oldest dispatch first
        self.carry: list[Job] = []  # rounds: winners to measure again on the new tip
        self.held: Item | None = None  # the next item, waiting for the experiment it names
        self.front: list[Item] = []  # to measure and decide before every job in flight (insert())
        self.version = 0  # +1 at each keep
        self.orders = 0
        self.baseline_done = False
        self.stopped = False
        self.waste = Waste()

    # -- events ------------------------------------------------------------------------------

    def measured(self, job: Job, runs: int, likely: bool | None = None) -> None:
        """Its measurement is over, with `runs` runs; its worker is free. `likely`: whether the
        verdict would keep it now (None: not known): serial decides a likely keep before anything
        new is dispatched, anything else while what comes next is dispatched."""
        job.keeps = likely is not False
        self.waste.runs += runs
        job.runs = runs
        self.release(job)
        if self.stale(job) and job.cancelled:
            self.waste.cancelled += runs
        elif self.stale(job):
            self.waste.stale += runs
        job.charged = self.stale(job)
        job.state = "measured"

    def paused(self, job: Job) -> None:
        """Rounds: its measurement waits (a likely keep, before its confirmation runs); its worker is free."""
        self.release(job)
        job.state = "paused"

    def lend(self, job: Job) -> None:
        """Its measurement waits (for the baseline's decision); its worker is free meanwhile
        (spread off: it waits on its worker, whose runs are one after another)."""
        if self.spread:
            self.release(job)

    def defers(self, job: Job) -> bool:
        """Whether a likely keep's confirmation runs wait for the round's decision (rounds only)."""
        return False

    def want(self, job: Job, runs: int, likely: bool = False) -> None:
        """Its measurement asks for `runs` more runs, at once; it waits for all of them.
        `likely`: they are a likely keep's confirmation runs (serial: what would be dispatched
        after it now would be stale if it is kept: nothing is, until it is decided)."""
        job.queued += runs
        job.likely = likely
        at = bisect.bisect_right(self.requests, job.order, key=lambda j: j.order)
        self.requests[at:at] = [job] * runs  # the oldest first: it holds up the decisions after it
        if self.spread:
            self.release(job)  # its worker is lent out while it waits

    def ran(self, job: Job, worker: int) -> None:
        """One of the runs it asked for is over."""
        job.running -= 1
        if self.spread or job.worker is None:
            self.free.append(worker)

    def decided(self, job: Job, kept: bool) -> None:
        """It was decided (kept: the tip moved to it)."""
        if job in self.jobs:
            self.jobs.remove(job)
        job.state = "done"
        if job.baseline:
            self.baseline_done = self.baseline_done or kept
        elif kept:
            self.version += 1

    def rush(self, job: Job) -> bool:
        """Serial, with spread: whether its grey zone's runs go all at once, not one at a time:
        every decision after it waits for it (it is the oldest undecided, or all before it are
        measured) and nothing new may be dispatched (a likely keep in flight, or `ahead` jobs):
        the workers a surplus run takes would be idle."""
        if self.schedule != "serial" or not self.spread or job not in self.jobs:
            return False
        on = self.holding()
        if on is not None and job.order < on.order:
            return True  # decided before a likely keep, which what comes next waits for
        if not self.blocked():
            return False
        for other in self.jobs:
            if other is job:
                return True
            if other.state != "measured" or self.stale(other):
                return False
        return False

    def holding(self) -> Job | None:
        """Serial: the last likely keep in flight, undecided: what is dispatched now on the tip
        would be stale if it is kept: it waits for its decision, and the workers meanwhile run
        ahead what is decided before it (rush)."""
        if not self.spread:
            return None
        return next((j for j in reversed(self.jobs) if j.likely and not self.stale(j) and j.state != "deciding"), None)

    def blocked(self) -> bool:
        """Serial: nothing new may be dispatched now (`ahead` jobs in flight, or a likely keep to wait for)."""
        return len(self.jobs) >= self.ahead or self.holding() is not None

    def insert(self, item: Item) -> None:
        """Measure and decide `item` before every job in flight, as soon as a worker is free (the
        tip re-measured: one worker measures it right after the decision that made it due)."""
        self.front.append(item)

    def reopen(self, job: Job) -> None:
        """Its measurement goes on (Decide found it needs more runs than it has, with what is
        decided now): it is measuring again, its runs so far counted once."""
        self.waste.runs -= job.runs
        job.state = "measuring"

    def recounted(self, job: Job, runs: list, more: Callable[[list], bool]) -> bool:
        """At its decision: `runs` asked again in seed order (recount) with `more`, the rerun
        question as answered now; the runs beyond the first "no" cut (surplus). True: one worker
        would have run it more, and its measurement goes on (reopened)."""
        keep, again = recount(runs, more)
        if keep < len(runs):
            job.runs -= len(runs) - keep
            self.waste.surplus += len(runs) - keep
            del runs[keep:]
        if again:
            self.reopen(job)
        return again

    def surplus(self, runs: int) -> None:
        """Runs started ahead of a decision that did not need them (Repeats.step)."""
        self.waste.surplus += runs
        self.waste.runs += runs

    # -- what to do next -----------------------------------------------------------------------

    def step(self, pull: Callable[[], Item | None]) -> list:
        """The actions to take now, in order. `pull()` gives the next item, or None for now."""
        out: list = []
        if self.stopped:
            return out
        while self.front and self.free:
            self.orders += 1
            order = self.jobs[0].order - 0.5 if self.jobs else self.orders
            job = Job(self.front.pop(0), order, self.version, worker=self.take())
            self.jobs.insert(0, job)
            out.append(Measure(job, job.worker))
        if self.front:
            return out  # it is decided next: it waits for a free worker, nothing else goes first
        self.serve(out)
        if self.schedule == "serial":
            self.restale(out)
            head = self.jobs[0] if self.jobs else None
            if head is not None and head.state == "measured" and not self.stale(head):
                head.state = "deciding"
                if not head.keeps:  # what comes next starts while it is decided (not a likely keep)
                    self.dispatch(out, pull)
                return [*out, Decide(head)]
            self.dispatch(out, pull)
        else:
            decide = self.round_step(out, pull)
            if decide is not None:
                return [*out, decide]
        return out

    def round_step(self, out: list, pull: Callable[[], Item | None]) -> Decide | None:
        raise NotImplementedError("schedule = rounds is autoresearch.rounds.Rounds (rounds.make)")

    def stop(self) -> list[Job]:
        """Nothing more starts; the jobs in flight, to record as interrupted."""
        self.stopped = True
        self.requests.clear()
        return list(self.jobs)

    @property
    def busy(self) -> bool:
        """Something in flight, or queued to run."""
        return bool(self.jobs or self.requests or self.carry or self.front)

    # -- inside ------------------------------------------------------------------------------

    def stale(self, job: Job) -> bool:
        return job.item.floating and not job.baseline and job.version != self.version and job.state != "carried"

    def release(self, job: Job) -> None:
        if job.worker is not None:
            self.free.append(job.worker)
            job.worker = None

    def take(self) -> int:
        self.free.sort()
        return self.free.pop(0)

    def serve(self, out: list) -> None:
        """The runs asked for first, in the order asked: they hold up a decision."""
        for job in list(self.requests):
            if self.spread and not self.free:
                return
            if not self.spread and (job.worker is None or job.running):
                continue  # one after another on its own worker
            self.requests.remove(job)
            job.queued -= 1
            job.running += 1
            out.append(Run(job, self.take() if self.spread else job.worker))

    def start(self, item: Item, out: list) -> Job:
        self.orders += 1
        job = Job(item, self.orders, self.version, worker=self.take())
        self.jobs.append(job)
        out.append(Measure(job, job.worker))
        return job

    def again(self, job: Job, out: list) -> None:
        """Measure it once more, on the tip as it is now."""
        job.version, job.state, job.cancelled, job.runs, job.charged = self.version, "measuring", False, 0, False
        job.attempts += 1
        job.winner, job.worker, job.likely = False, self.take(), False
        out.append(Measure(job, job.worker, again=True))

    def restale(self, out: list) -> None:
        """Serial: a stale job in flight is cancelled; a measured one measured again when a worker is free."""
        for job in self.jobs:
            if not self.stale(job) or job.state == "deciding":
                continue
            if job.state == "measuring" and not job.cancelled:
                job.cancelled = True
                dropped = job.queued
                for _ in range(dropped):
                    self.requests.remove(job)
                job.queued = 0
                out.append(Cancel(job, dropped))
            elif job.state == "measured" and self.free:
                if not job.charged:  # measured before the tip moved: its runs are thrown away now
                    self.waste.stale += job.runs
                self.again(job, out)

    def next_item(self, pull: Callable[[], Item | None], inflight: list[Job]) -> Item | None:
        item = self.held or pull()
        if item is not None and item.waits and any(j.item.name == item.waits for j in inflight):
            self.held = item
            return None
        self.held = None
        return item

    def dispatch(self, out: list, pull: Callable[[], Item | None]) -> None:
        if not self.baseline_done and not self.jobs and self.free:  # the baseline first
            self.start(Item(None, "baseline", floating=False), out)
        if self.holding() is not None:
            return  # a likely keep in flight: what would be dispatched now would be stale if it is kept
        while self.free and len(self.jobs) < self.ahead:
            item = self.next_item(pull, self.jobs)
            if item is None:
                return
            self.start(item, out)
