"""The scheduler at scale: speed-up and wasted runs for N = 1, 4, 16, 64 workers, keep rates of
1 %, 5 % and 15 %, in both schedules: a discrete-event simulation with simulated clocks.

It drives the REAL scheduling code (autoresearch/scheduler.py: Scheduler and Repeats, the code
plugins/workers.py drives with threads) with a heap of simulated finish times, and a fake
verdict made of the verdict plugin's own rule: each run's value is its commit's true value plus
N(0, 1) noise (autoresearch/simulation.py's Gaussian model); whether a candidate needs another run
and whether it is kept is plugins/verdict.py's ``judge()`` with its default Rule (repeats 5,
max_repeats 8, noise_k 2), the decision on the means at the last run as make_verdict makes it.

A candidate is good with probability p (true effect +4 σ, nearly always kept), else no better
(an effect from -2 σ to 0). Effects add up: a good idea tried again on a new tip (a stale re-run,
a round's winner carried over) is still as good. Every run takes 1 time unit (± 10 %).

Printed, per keep rate and schedule: decisions per time unit against one worker's (serial, -n 1),
the share of runs wasted (stale, cancelled, surplus: a run measured, then made stale by a keep
before its decision, counts), the keep rate the verdict reached; for serial also "today": the
loop before parallel repeats (spread off: a decision's runs one after another on its worker, up
to 2N experiments in flight, no hold on a likely keep, no run-ahead; the same stale re-runs and
the same accounting). Serial with parallel repeats: a decision's runs on free workers at once,
the oldest dispatch's runs first; a likely keep holds back new dispatches (they would be stale)
while the runs before it go ahead (Scheduler.rush: a grey zone's runs at once); at its decision
a candidate's runs are recounted with what is decided then (scheduler.recount).
Targets (issue 26): rounds at 64 workers >= 32x at 5 %, >= 16x at 15 %, wasted <= 20 %; serial
with parallel repeats >= 2x today's speed-up at every keep rate.

    python bench/bench_scale.py [--hypotheses 2000] [--seeds 2]
"""
from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import random
from dataclasses import dataclass, field, replace

from autoresearch.plugins.verdict import Rule, judge

from autoresearch.scheduler import (
    Cancel,
    Decide,
    Item,
    Job,
    Measure,
    Release,
    Repeats,
    Resume,
    Run,
)
from autoresearch.rounds import make
from autoresearch.simulation import gaussian
from autoresearch.stats import AGAIN, KEEP

RULE = Rule(direction="maximize")
GOOD = 4.0
GREY = 0  # runs ahead in the grey zone (plugins/workers.py: the same)


@dataclass
class Trial:
    """One measurement of a job (the driver's payload): its commit's true value and its runs."""

    true: float
    version: int  # the tip it is built on: its runs are the baseline it is judged against
    repeats: Repeats
    runs: list[float] = field(default_factory=list)
    batch: int = 0  # runs of the current batch still going
    waiting: int = 0  # rounds: the confirmation runs a paused winner will ask for
    deferred: bool = True
    cancelled: bool = False
    entries: list = field(default_factory=list)  # its heap entries still to come


class Simulation:
    def __init__(self, workers: int, schedule: str, p: float, hypotheses: int, seed: int, spread: bool = True) -> None:
        self.rng = random.Random(seed)
        self.effects = [GOOD if self.rng.random() < p else -2 * self.rng.random() for _ in range(hypotheses)]
        self.sched = make(workers, schedule, judge=self.preview, spread=spread)
        self.spread = spread
        self.now = 0.0
        self.heap: list = []
        self.ids = itertools.count()
        self.tip_true, self.tip_values = 0.0, ()
        self.tips: dict[int, tuple[float, tuple[float, ...]]] = {}
        self.source = iter(range(hypotheses))
        self.decisions = self.kept = 0
        self.lent: list[Job] = []  # candidates waiting for the baseline's decision

    # -- the fake verdict: the real judge() on simulated values -------------------------------------

    def verdict(self, job: Job, final: bool, tip: tuple[float, ...] | None = None, runs=None) -> str:
        trial = job.payload
        base = self.tips.get(job.version, (0.0, ()))[1]  # read when needed, as Experiment.baseline
        if not base:
            return "discard"  # nothing to compare with yet: no more runs, as the verdict plugin
        values, tip = tuple(trial.runs if runs is None else runs), base if tip is None else tip
        j = judge(values, base, tip, 1.0, 2, RULE, scale=1.0)
        if final and j.status == AGAIN:
            last = replace(RULE, repeats=len(values), max_repeats=len(values))
            j = judge(values, base, tip, 1.0, 2, last, scale=1.0)
        return j.status

    def more(self, job: Job, runs: tuple) -> bool:
        if job.baseline:
            return len(runs) < RULE.repeats
        return len(runs) < RULE.max_repeats and self.verdict(job, False, self.tip_values, runs) == AGAIN

    def likely(self, job: Job, runs) -> bool:
        """Whether it would be kept on these runs (a likely keep's confirmation runs go at once)."""
        return self.verdict(job, True, self.tip_values, runs) == KEEP

    def preview(self, job: Job) -> tuple[bool, float]:
        trial = job.payload
        return self.verdict(job, True) == KEEP, sum(trial.runs) / len(trial.runs)

    # -- the driver: actions to simulated runs ----------------------------------------------------

    def pull(self) -> Item | None:
        i = next(self.source, None)
        return None if i is None else Item(i, f"h{i}")

    def launch(self, job: Job, worker: int, kind: str) -> None:
        entry = [self.now + self.rng.uniform(0.9, 1.1), next(self.ids), kind, job, worker, True]
        job.payload.entries.append(entry)
        heapq.heappush(self.heap, entry)

    def act(self, action) -> None:
        if isinstance(action, Measure):
            job = action.job
            true = 0.0 if job.baseline else self.tip_true + self.effects[job.item.payload]
            ahead = RULE.repeats if self.spread else 1  # today: one run after another
            job.payload = Trial(true, job.version, Repeats(ahead, opening=3 if job.baseline and self.spread else 0,
                                                          grey=GREY if self.spread else 0))
            self.launch(job, action.worker, "first")
        elif isinstance(action, Run):
            self.launch(action.job, action.worker, "run")
        elif isinstance(action, Resume):
            trial = action.job.payload
            trial.batch, trial.waiting = trial.waiting, 0
            self.sched.want(action.job, trial.batch)
        elif isinstance(action, Release):
            self.sched.measured(action.job, len(action.job.payload.runs))
        elif isinstance(action, Cancel):  # its runs stop at once
            trial = action.job.payload
            trial.cancelled = True
            trial.batch -= action.dropped
            live = [e for e in trial.entries if e[5]]
            for entry in live:
                entry[5] = False
                trial.entries.append([self.now, next(self.ids), *entry[2:5], True])
                heapq.heappush(self.heap, trial.entries[-1])
            if not live:
                self.sched.measured(action.job, len(trial.runs))
        elif isinstance(action, Decide):
            job = action.job
            if not job.baseline and self.sched.schedule == "serial" and self.spread and self.recount(job):
                return  # one worker would have run it more: its measurement goes on
            kept = job.baseline or self.verdict(job, True, self.tip_values) == KEEP
            if kept:
                self.tip_true, self.tip_values = job.payload.true, tuple(job.payload.runs)
            if not job.baseline:
                self.decisions += 1
                self.kept += kept
            self.sched.decided(job, kept)
            if kept:
                self.tips[self.sched.version] = (self.tip_true, self.tip_values)
            waiting, self.lent = self.lent, []
            for other, trial in waiting:  # the candidates waiting for it go on, compared with its runs
                if other.payload is not trial or trial.cancelled or self.sched.stale(other):
                    continue  # measured again meanwhile, or stale: the scheduler cancels it
                self.advance(other)

    def recount(self, job: Job) -> bool:
        """At its decision, the runs that count with what is decided now; True: it needs more."""
        trial = job.payload
        if not self.sched.recounted(job, trial.runs, lambda runs: self.more(job, runs)):
            return False
        trial.repeats = Repeats(RULE.repeats, grey=GREY)
        self.advance(job)
        return True

    def finished(self, job: Job, worker: int, kind: str) -> None:
        trial = job.payload
        if kind == "run":
            self.sched.ran(job, worker)
            trial.batch -= 1
        if not trial.cancelled:
            trial.runs.append(trial.true + gaussian(self.rng, 0.0, len(trial.runs)))
        if trial.batch > 0:
            return
        if trial.cancelled:
            self.sched.measured(job, len(trial.runs))
            return
        if not job.baseline and not self.sched.baseline_done:  # its next runs wait for the baseline's decision
            self.sched.lend(job)
            self.lent.append((job, trial))
            return
        self.advance(job)

    def advance(self, job: Job) -> None:
        """After a batch: the runs that count, and the next batch, or the end of the measurement."""
        trial = job.payload
        likely = None if job.baseline or not self.spread else functools.partial(self.likely, job)
        rush = RULE.max_repeats if self.sched.rush(job) else 0  # the head of the line: its grey zone at once
        keep, start = trial.repeats.step(trial.runs, lambda runs: self.more(job, runs), likely, rush)
        if keep < len(trial.runs):
            self.sched.surplus(len(trial.runs) - keep)
            del trial.runs[keep:]
        if start and trial.deferred and self.sched.defers(job):
            trial.deferred, trial.waiting = False, start
            self.sched.paused(job)
        elif start:
            trial.batch = start
            self.sched.want(job, start, trial.repeats.confirming)
        else:  # whether it would be kept now, as plugins/workers.py tells it (serial, spread)
            likely = None if job.baseline or not self.spread or self.sched.schedule != "serial" else self.likely(job, trial.runs)
            self.sched.measured(job, len(trial.runs), likely)

    def run(self) -> tuple[float, float, float]:
        """(decisions per time unit, wasted share, keep rate)."""
        while True:
            actions = self.sched.step(self.pull)
            for action in actions:
                self.act(action)
            if actions:
                continue
            while self.heap and not self.heap[0][5]:
                heapq.heappop(self.heap)
            if not self.heap:
                break
            entry = heapq.heappop(self.heap)
            t, _, kind, job, worker, _ = entry
            entry[5] = False
            self.now = t
            self.finished(job, worker, kind)
        return self.decisions / self.now, self.sched.waste.share, self.kept / max(1, self.decisions)


def measure(workers: int, schedule: str, p: float, hypotheses: int, seeds: int, spread: bool = True):
    out = [Simulation(workers, schedule, p, hypotheses, s, spread).run() for s in range(seeds)]
    return tuple(sum(x[i] for x in out) / len(out) for i in range(3))


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hypotheses", type=int, default=2000, help="candidates per simulated session")
    ap.add_argument("--seeds", type=int, default=2, help="sessions averaged per figure")
    args = ap.parse_args()
    figures: dict = {}
    for p in (0.01, 0.05, 0.15):
        one, _, _ = measure(1, "serial", p, args.hypotheses, args.seeds)
        print(f"keep rate {p:.0%} (one worker: {one:.3f} decisions per run-time)")
        for n in (1, 4, 16, 64):
            row = []
            for name, schedule, spread in (("today", "serial", False), ("serial", "serial", True),
                                           ("rounds", "rounds", True)):
                rate, waste, kept = measure(n, schedule, p, args.hypotheses, args.seeds, spread)
                figures[(p, n, name)] = (rate / one, waste, kept)
                row.append(f"{name} {rate / one:5.1f}x wasted {waste:4.0%} kept {kept:4.1%}")
            today, serial = figures[(p, n, "today")][0], figures[(p, n, "serial")][0]
            print(f"  N={n:<3} " + " | ".join(row) + f" | serial/today {serial / today:4.2f}")
    print("at 64 workers: serial/today " + ", ".join(
        f"{figures[(p, 64, 'serial')][0] / figures[(p, 64, 'today')][0]:.2f} at {p:.0%}" for p in (0.01, 0.05, 0.15))
        + " (target >= 2); rounds " + ", ".join(
        f"{figures[(p, 64, 'rounds')][0]:.1f}x wasted {figures[(p, 64, 'rounds')][1]:.0%} at {p:.0%}"
        for p in (0.01, 0.05, 0.15)) + " (target >= 32x at 5 %, >= 16x at 15 %, wasted <= 20 %)")
    return figures


if __name__ == "__main__":
    main()
