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
             worker's, for any N.
    rounds   up to ``round_size`` (default N) candidates measured on the same tip; when all are
             measured, the losers are decided, then the best winner (the one a keep would move
             the tip to), then the other winners are measured again on the new tip, as a
             combination with it, in the next round. Throughput, not one worker's results.

A run thrown away is counted as wasted: ``stale`` (finished, on a tip that moved), ``cancelled``
(stopped by a keep mid-way) and ``surplus`` (run ahead of a decision that did not need it).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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
    order: int  # dispatch order
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
    score: float = 0.0
    payload: Any = None  # the driver's own (plugins/workers.py: the Experiment)

    @property
    def baseline(self) -> bool:
        return self.item.payload is None


@dataclass(frozen=True)
class Measure:
    job: Job
    worker: int
    again: bool = False


@dataclass(frozen=True)
class Run:
    job: Job
    worker: int


@dataclass(frozen=True)
class Cancel:
    job: Job
    dropped: int  # runs it had asked for that will not start


@dataclass(frozen=True)
class Decide:
    job: Job


@dataclass(frozen=True)
class Resume:
    job: Job  # rounds: a paused winner's confirmation runs, now (it is the round's best)


@dataclass(frozen=True)
class Release:
    job: Job  # rounds: a paused winner's measurement ends here (another was kept)


@dataclass
class Waste:
    stale: int = 0
    cancelled: int = 0
    surplus: int = 0
    runs: int = 0  # every run, wasted or not

    @property
    def total(self) -> int:
        return self.stale + self.cancelled + self.surplus

    @property
    def share(self) -> float:
        return self.total / self.runs if self.runs else 0.0

    def line(self) -> str:
        """"wasted runs: 3 of 40 (8%): 2 stale, 1 cancelled" (the summary's and status' line)."""
        parts = [f"{n} {what}" for what, n in (("stale", self.stale), ("cancelled", self.cancelled),
                                                ("surplus", self.surplus)) if n]
        return f"wasted runs: {self.total} of {self.runs} ({self.share:.0%})" + (f": {', '.join(parts)}" if parts else "")


class Repeats:
    """The runs of one measurement, started several at once and counted in seed order, as one
    worker would have: after each run, ``more(runs so far)`` (the rerun hook) says whether
    another is needed; runs started beyond the first "no" are surplus. The baseline opens with 3
    (`opening`): a deterministic workload's baseline stops there (the verdict's rule), a noisy
    one's goes on to `ahead`."""

    def __init__(self, ahead: int, opening: int = 0, grey: int = 0) -> None:
        self.ahead = ahead  # the runs a decision is likely to need (the repeats setting)
        self.opening = opening  # the first batch brings it to this many runs (0: to `ahead`)
        self.grey = grey  # in the grey zone, runs ahead up to this many (0: one at a time)
        self.checked = 0
        self.confirming = False

    def step(self, runs: Sequence[Any], more: Callable[[tuple], bool],
             likely: Callable[[tuple], bool] | None = None) -> tuple[int, int]:
        """(how many of `runs` count, how many runs to start now; 0: the measurement is over).
        `likely(runs)`: whether it would be kept now (the runs ahead confirm a keep: all at once;
        else it is in the grey zone: one at a time); ``self.confirming`` says which."""
        for i in range(self.checked, len(runs)):
            self.checked = i + 1
            if not more(tuple(runs[:i + 1])):
                return i + 1, 0
        if likely is not None:
            self.confirming = likely(tuple(runs))
            return len(runs), max(1, (self.ahead if self.confirming else self.grey) - len(runs))
        target = self.opening if self.opening and self.checked <= 1 else self.ahead
        return len(runs), max(1, min(target, self.ahead) - len(runs))


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
        self.requests: deque[Job] = deque()  # a job once per run it asked for, in the order asked
        self.carry: list[Job] = []  # rounds: winners to measure again on the new tip
        self.held: Item | None = None  # the next item, waiting for the experiment it names
        self.version = 0  # +1 at each keep
        self.orders = 0
        self.baseline_done = False
        self.stopped = False
        self.waste = Waste()

    # -- events ------------------------------------------------------------------------------

    def measured(self, job: Job, runs: int) -> None:
        """Its measurement is over, with `runs` runs; its worker is free."""
        self.waste.runs += runs
        job.runs = runs
        self.release(job)
        if self.stale(job) and job.cancelled:
            self.waste.cancelled += runs
        elif self.stale(job):
            self.waste.stale += runs
        job.state = "measured"

    def paused(self, job: Job) -> None:
        """Rounds: its measurement waits (a likely keep, before its confirmation runs); its worker is free."""
        self.release(job)
        job.state = "paused"

    def lend(self, job: Job) -> None:
        """Its measurement waits (for the baseline's decision); its worker is free meanwhile."""
        self.release(job)

    def defers(self, job: Job) -> bool:
        """Whether a likely keep's confirmation runs wait for the round's decision (rounds only)."""
        return False

    def want(self, job: Job, runs: int) -> None:
        """Its measurement asks for `runs` more runs, at once; it waits for all of them."""
        job.queued += runs
        self.requests.extend([job] * runs)
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
        self.serve(out)
        if self.schedule == "serial":
            self.restale(out)
            head = self.jobs[0] if self.jobs else None
            if head is not None and head.state == "measured" and not self.stale(head):
                head.state = "deciding"
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
        return bool(self.jobs or self.requests or self.carry)

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
        job.version, job.state, job.cancelled, job.runs = self.version, "measuring", False, 0
        job.attempts += 1
        job.winner, job.worker = False, self.take()
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
        while self.free and len(self.jobs) < self.ahead:
            item = self.next_item(pull, self.jobs)
            if item is None:
                return
            self.start(item, out)
