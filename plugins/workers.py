"""workers: ``-n N`` runs N experiments at once, each by a worker with a git worktree and a
device of its own, with the same results as one at a time.

    dispatch   in collection order, to the first free worker, built on the branch tip as it is
               then (a hypothesis naming its baseline waits until that baseline is decided)
    measure    autoresearch_experiment_measure, in the worker's thread: the patch committed in
               its worktree, the workload, repeats
    decide     autoresearch_experiment_decide, in dispatch order, whatever order they finish
               in; an experiment built on the tip ("best", the default) that was dispatched
               before the tip last moved is applied again onto the new tip and run again there
               first: the branch only ever moves to a commit measured as the tip's child

These are the two hooks the one-worker loop calls too (through protocol.runprotocol): a plugin
that wraps or replaces either works the same for any N. So on a deterministic workload
results.tsv is the same for any N; what a keep costs is the runs in flight that it makes stale. Ctrl-C or SIGTERM stops every worker's runs at once; the
experiments in flight are recorded as interrupted and run again on --resume.
"""
from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass

from autoresearch import hookimpl, interrupts
from autoresearch.errors import Stopped
from autoresearch.loop import baseline_decided
from autoresearch.protocol import interrupted
from autoresearch.session import Experiment


@dataclass
class Slot:
    exp: Experiment
    future: cf.Future
    released: bool = False  # its worker is free again (its runs are over)


class ParallelLoop:
    def __init__(self, session) -> None:
        self.session = session
        self.free = list(range(session.workers))
        self.inflight: list[Slot] = []  # in dispatch order
        self.held = None  # the next hypothesis, waiting for the baseline it names to be decided
        self.pool = cf.ThreadPoolExecutor(max_workers=session.workers, thread_name_prefix="autoresearch-worker")

    def run(self) -> None:
        try:
            while True:
                self.release()
                self.decide_ready()  # first: a stale experiment to run again has the first free worker
                if self.session.shouldstop:  # -x: the experiments after the one that stopped it do not count
                    self.stop(None)
                    return
                self.dispatch()
                if not self.inflight:
                    if self.session.shouldstop or not self.session.more():  # more() may wait (--watch)
                        return
                    continue
                self.wait()
        except BaseException as exc:
            self.stop(exc)
            raise
        finally:
            self.pool.shutdown(wait=True)

    def start(self, h, seq: int | None = None) -> Slot:
        """Hand an experiment to a free worker: set up in its worktree and measured in its thread."""
        worker = self.free.pop(0)
        session = self.session
        exp = session.experiment(h) if seq is None else Experiment(session, seq, h)
        exp.worker, exp.workdir = worker, session.workdirs[worker]
        return Slot(exp, self.pool.submit(self.work, exp))

    def work(self, exp: Experiment) -> None:
        self.session.config.hook.autoresearch_experiment_measure(experiment=exp)

    def dispatch(self) -> None:
        if not self.session.baseline_done and not self.inflight and self.free:  # the baseline goes first
            self.inflight.append(self.start(None))
        # at most 2N ahead of the next decision: each keep makes what was dispatched before it stale
        while self.free and not self.session.shouldstop and len(self.inflight) < 2 * self.session.workers:
            if self.inflight and self.session.config.hook.autoresearch_dispatch_hold(
                    session=self.session, inflight=len(self.inflight)):  # e.g. what cost_budget cannot pay for
                return
            h = self.held or self.session.next_item()
            if h is None:
                return
            named = h.baseline not in ("best", "initial")
            if named and any(s.exp.name == h.baseline for s in self.inflight):
                self.held = h
                return
            self.held = None
            self.inflight.append(self.start(h))

    def release(self) -> None:
        for slot in self.inflight:
            if slot.future.done() and not slot.released:
                slot.released = True
                self.free.append(slot.exp.worker)

    def wait(self) -> None:
        """Until a run in flight ends (its worker is free again; it may be the next to decide)."""
        if any(s.future.done() and not s.released for s in self.inflight):
            return
        running = [s.future for s in self.inflight if not s.future.done()]
        if running:
            cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)

    def stale(self, exp: Experiment) -> bool:
        h = exp.hypothesis
        return h is not None and h.baseline == "best" and exp.base_commit != self.session.tip

    def rerun_stale(self) -> None:
        """What was built on a tip that has moved since runs again on the new tip, in dispatch
        order, as workers free up; a run still going on the old tip is stopped: it is wasted."""
        for i, slot in enumerate(self.inflight):
            if not self.stale(slot.exp):
                continue
            if not slot.future.done():
                slot.exp.cancelled.set()
                continue
            self.release()
            if not self.free:
                return
            self.inflight[i] = self.start(slot.exp.hypothesis, seq=slot.exp.seq)

    def decide_ready(self) -> None:
        self.rerun_stale()
        while self.inflight and self.inflight[0].future.done() and not self.stale(self.inflight[0].exp):
            slot = self.inflight[0]
            if slot.future.exception() is not None:
                self.inflight.pop(0)
                slot.future.result()  # a worker's error is the session's
            tip = self.session.tip
            # in flight until decided: a stop during its verdict records it as interrupted, as with one worker
            report = self.session.config.hook.autoresearch_experiment_decide(experiment=slot.exp)
            self.inflight.pop(0)
            if slot.exp.hypothesis is None and not baseline_decided(self.session, report):
                return
            if self.session.shouldstop:
                return
            if self.session.tip != tip:  # a keep: what was dispatched on the old tip is stale now
                self.rerun_stale()

    def stop(self, exc: BaseException | None) -> None:
        """Stop every worker's run at once; what was in flight is recorded as interrupted."""
        self.session.stopping.set()
        with interrupts.deferred():  # a second Ctrl-C does not cut this short
            cf.wait([s.future for s in self.inflight])
            for slot in self.inflight:
                interrupted(slot.exp, exc or Stopped())
            self.inflight.clear()


@hookimpl(tryfirst=True)
def autoresearch_runloop(session):
    if session.workers <= 1:
        return None  # the default loop: one at a time
    ParallelLoop(session).run()
    return True
