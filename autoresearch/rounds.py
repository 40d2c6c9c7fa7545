"""schedule = "rounds": throughput for many workers, at the price of one worker's results.

    a round     up to ``round_size`` (default: the workers) candidates, all built on the same
                tip, measured at once; one that asks for more runs (a likely keep's
                confirmation runs, or the grey zone's) pauses there, its worker free
    its end     when every candidate is measured or paused: the losers are decided (against the
                tip they were built on, on the runs they have: a grey zone is a discard); then
                the winners, best first: the best's confirmation runs run (all at once) and it
                is decided; once one is kept,
                every other winner is measured again on the new tip, combined with it, in the
                next round; a winner carried over once already is discarded as stale

So each round keeps at most one candidate plus what its combinations keep later; what a keep
makes stale costs one run (a paused winner), not its confirmation runs. The branch only ever
moves to a commit measured as the tip's child, as with serial.
"""
from __future__ import annotations

from typing import Any, Callable

from autoresearch.scheduler import Decide, Item, Job, Release, Resume, Scheduler


class Rounds(Scheduler):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.round: list[Job] = []  # the open round's jobs
        self.deciding: list[Job] = []  # the closed round's, in the order they are decided
        self.releasing: list[Job] = []  # paused winners another keep has made stale
        self.closed = False
        self.rounds = 0

    def defers(self, job: Job) -> bool:
        return not job.baseline

    def round_step(self, out: list, pull: Callable[[], Item | None]) -> Decide | None:
        for job in self.releasing:
            job.state = "measuring"
            out.append(Release(job))
        self.releasing = []
        base = next((j for j in self.jobs if j.baseline), None)
        if base is None and not self.baseline_done and not self.round and not self.deciding:
            if self.free:
                self.start(Item(None, "baseline", floating=False), out)
        elif base is not None and base.state == "measured":
            base.state = "deciding"
            return Decide(base)
        if self.deciding:
            return self.decide_next(out)
        self.fill(out, pull)
        if self.closed and self.baseline_done and all(j.state in ("measured", "paused") for j in self.round):
            self.close_round()
            return self.decide_next(out)
        return None

    def fill(self, out: list, pull: Callable[[], Item | None]) -> None:
        """Candidates into the open round while workers are free: the carried winners first."""
        while self.free and len(self.round) < self.round_size and not self.closed:
            ready = next((j for j in self.carry if j.state in ("carried", "measured")), None)
            if ready is not None:
                self.carry.remove(ready)
                self.again(ready, out)
                job = ready
            elif self.carry:
                return  # a carried winner still being let go: it joins this round
            else:
                item = self.next_item(pull, self.jobs)
                if item is None:
                    self.closed = bool(self.round)
                    return
                job = self.start(item, out)
            self.round.append(job)
        if len(self.round) >= self.round_size:
            self.closed = True

    def close_round(self) -> None:
        """The round's losers first (in dispatch order), then its winners, best first."""
        self.rounds += 1
        for job in self.round:
            job.winner, job.score = self.judge(job)
        losers = [j for j in self.round if not j.winner]
        winners = sorted((j for j in self.round if j.winner), key=lambda j: -j.score)
        self.deciding, self.round, self.closed = losers + winners, [], False

    def decide_next(self, out: list) -> Decide | None:
        while self.deciding:
            job = self.deciding[0]
            if job.state == "paused":  # the best so far: its runs, now; a loser: decided on the runs it has
                job.state = "measuring"
                out.append(Resume(job) if job.winner and not job.stale else Release(job))
                return None
            if job.state != "measured":
                return None  # its runs are going (or it is being let go)
            self.deciding.pop(0)
            job.state = "deciding"
            return Decide(job)
        return None

    def decided(self, job: Job, kept: bool) -> None:
        super().decided(job, kept)
        if not (kept and job.winner) or job.baseline:
            return
        for other in [j for j in self.deciding if j.winner and j.item.floating]:
            paused = other.state == "paused"
            if paused:
                self.releasing.append(other)  # its stale runs are counted when it is measured
            else:
                self.waste.stale += other.runs
            if other.attempts > 1:
                other.stale = True  # tried combined once already: discarded as stale
                continue
            self.deciding.remove(other)
            if not paused:
                other.state = "carried"
            self.carry.append(other)


def make(workers: int, schedule: str = "serial", **kwargs: Any) -> Scheduler:
    """The scheduler for `schedule` (serial: autoresearch/scheduler.py's; rounds: this module's)."""
    if schedule == "rounds":
        return Rounds(workers, schedule, **kwargs)
    return Scheduler(workers, schedule, **kwargs)
