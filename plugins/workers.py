"""workers: ``-n N`` runs N experiments at once, each by a worker with a git worktree and a
device of its own. Who runs what is autoresearch/scheduler.py's (a pure object); this plugin
drives it with threads and the real executors.

    dispatch   in collection order, to the first free worker, built on the branch tip as it is
               then (a hypothesis naming its baseline waits until that baseline is decided)
    measure    autoresearch_experiment_measure, in the worker's thread: the patch committed in
               its worktree, its first run; the runs its decision needs next (the baseline's
               repeats, a keep's confirmation runs) go to free workers at once, each with its
               own seed and log, and count in seed order, as one worker's would
    decide     autoresearch_experiment_decide, on the main thread. schedule = "serial" (the
               default): in dispatch order; an experiment built on the tip that was dispatched
               before the tip last moved is measured again on the new tip first, so the results
               are one worker's. schedule = "rounds": a round of candidates on one tip, the best
               winner kept, the others measured again combined with it (docs/workers.md)

These are the two hooks the one-worker loop calls too (through protocol.runprotocol): a plugin
that wraps or replaces either works the same for any N. Ctrl-C or SIGTERM stops every worker's
runs at once; the experiments in flight are recorded as interrupted and run again on --resume.
Runs thrown away (stale, cancelled, surplus) are counted: the summary and ``status`` say how many.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import queue
import threading

from autoresearch import hookimpl, interrupts
from autoresearch.batches import Batch, RunView
from autoresearch.errors import Stopped
from autoresearch.loop import baseline_decided
from autoresearch.protocol import call, interrupted
from autoresearch.reports import Cause, RunResult, Status, mean_metrics, sign
from autoresearch.scheduler import (
    SCHEDULES,
    Cancel,
    Decide,
    Item,
    Job,
    Measure,
    Release,
    Repeats,
    Resume,
    Run,
    Waste,
)
from autoresearch.rounds import make
from autoresearch.drift import REMEASURED
from autoresearch.recount import Decisions
from autoresearch.session import Experiment


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("schedule", "--schedule", default="serial", choices=SCHEDULES,
                      help="with -n > 1: serial (results the same as -n 1: decisions in dispatch order, what a "
                           "keep makes stale measured again) or rounds (throughput: a round of candidates on one "
                           "tip, the best kept, the other winners tried again combined with it; see docs/workers.md)")
    parser.addsetting("round_size", type="int", default=0, range=(0, 4096),
                      help="schedule = \"rounds\": candidates per round (0: one per worker)")


class ParallelLoop(Decisions):
    def __init__(self, session) -> None:
        self.session = session
        config = session.config
        self.sched = make(session.workers, config.get("schedule", "serial"), round_size=config.get("round_size", 0),
                          judge=self.judge)
        self.sched.baseline_done = session.baseline_done
        self.ahead = config.get("repeats", 1) or 1  # the runs a decision is likely to need
        self.most = max(self.ahead, config.get("max_repeats", 0) or 0)  # the most it may need
        self.events: queue.Queue = queue.Queue()
        self.futures: dict[Job, cf.Future] = {}
        self.batches: list[Batch] = []
        self.lock = threading.Lock()
        self.closing = False
        self.recorded = Waste()
        self.baseline_ready = threading.Event()  # set once the baseline is decided (or the session stops)
        if session.baseline_done:
            self.baseline_ready.set()
        self.pool = cf.ThreadPoolExecutor(max_workers=2 * session.workers + 1, thread_name_prefix="autoresearch-worker")

    def run(self) -> None:
        try:
            while True:
                self.drain(block=False)
                if self.session.shouldstop:  # -x: the experiments after the one that stopped it do not count
                    self.stop(None)
                    return
                actions = self.sched.step(self.pull)
                for action in actions:
                    self.act(action)
                if actions:
                    continue
                if not self.sched.busy:
                    if self.session.shouldstop or not self.session.more():  # more() may wait (--watch)
                        return
                    continue
                self.drain(block=True)
        except BaseException as exc:
            self.stop(exc)
            raise
        finally:
            self.pool.shutdown(wait=True)
            self.record_waste()

    # -- what the scheduler is given ------------------------------------------------------------

    def pull(self) -> Item | None:
        inflight = len(self.sched.jobs)
        if inflight and self.session.config.hook.autoresearch_dispatch_hold(session=self.session, inflight=inflight):
            return None  # for now: e.g. what cost_budget cannot pay for beside what is in flight
        h = self.session.next_item()
        if h is None:
            return None
        return Item(h, h.name, h.baseline if h.baseline not in ("best", "initial") else "", h.baseline == "best")

    def judge(self, job: Job) -> tuple[bool, float]:
        """Rounds: whether the verdict would keep it against the tip it was built on, and its score."""
        exp, config = job.payload, self.session.config
        if not exp.runs or not exp.runs[-1].ok:
            return False, 0.0
        verdict = config.hook.autoresearch_make_verdict(experiment=exp, metrics=exp.metrics, result=exp.runs[-1],
                                                        runs=tuple(exp.runs), tip=self.session.sample(exp.base_commit))
        value = exp.metrics.get(config.get("metric"))
        score = 0.0 if value is None else sign(config.get("direction")) * value  # higher is better
        return verdict.status == Status.KEEP, score

    def drain(self, block: bool) -> None:
        """The workers' news, to the scheduler (waits up to 0.5 s for the first when `block`)."""
        try:
            event = self.events.get(timeout=0.5) if block else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            what, job, value = event
            if what == "measured":
                future = self.futures.pop(job)
                error = future.exception()
                if error is not None and not (isinstance(error, Stopped) and job.payload.should_stop()):
                    self.sched.jobs.remove(job)  # not in flight: a worker's error is the session's
                    future.result()
                self.sched.measured(job, len(job.payload.runs), value)
            elif what == "want":
                self.sched.want(job, *value)
            elif what == "ran":
                self.sched.ran(job, value)
            elif what == "surplus":
                self.sched.surplus(value)
            elif what == "paused":
                self.sched.paused(job)
            elif what == "lend":
                self.sched.lend(job)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    # -- what the scheduler says ----------------------------------------------------------------

    def act(self, action) -> None:
        if isinstance(action, Measure):
            self.measure(action.job, action.worker, action.again)
        elif isinstance(action, Run):
            self.run_one(action.job, action.worker)
        elif isinstance(action, Cancel):
            action.job.payload.cancelled.set()
            if action.dropped:
                action.job.batch.drop("stale: the tip moved")
        elif isinstance(action, (Resume, Release)):
            action.job.go = isinstance(action, Resume)
            action.job.resume.set()
        elif isinstance(action, Decide):
            self.decide(action.job)

    def measure(self, job: Job, worker: int, again: bool) -> None:
        session, h = self.session, job.item.payload
        exp = Experiment(session, job.payload.seq, h) if again else session.experiment(h)
        if job.item.name == REMEASURED:  # the tip once more (autoresearch/drift.py), due after a decision
            exp.remeasure, exp.description = True, REMEASURED
        exp.worker, exp.workdir = worker, session.workdirs[worker]
        exp.spread = functools.partial(self.spread, job)  # protocol.measure: the runs after the first, here
        job.payload = exp
        self.futures[job] = self.pool.submit(self.work, job)

    def work(self, job: Job) -> None:
        likely = None
        try:
            self.session.config.hook.autoresearch_experiment_measure(experiment=job.payload)
            likely = self.kept_now(job)
        finally:
            self.events.put(("measured", job, likely))

    def kept_now(self, job: Job) -> bool | None:
        """Serial: whether the verdict would keep it on its runs as the tip is now (a likely keep
        is decided before anything new is dispatched: what would be would be stale)."""
        exp = job.payload
        if self.sched.schedule != "serial" or job.baseline or not exp.runs or not exp.runs[-1].ok or exp.should_stop():
            return None
        return self.likely(exp, tuple(exp.runs))

    def spread(self, job: Job, exp: Experiment, more) -> None:
        """The runs after the first, on the measure's thread: asked for at once (as many as the
        decision is likely to need), counted in seed order while ``more`` (the rerun hook) says so."""
        remeasure = getattr(exp, "remeasure", False)  # the tip re-measured: one run, one more for an outlier
        repeats = Repeats(self.ahead, opening=2 if remeasure else 3 if job.baseline else 0)
        likely = None if job.baseline else functools.partial(self.likely, exp)
        deferred = self.sched.defers(job)
        if not job.baseline and not self.baseline_ready.is_set():  # its next runs, if any, are asked for
            self.events.put(("lend", job, None))  # with the baseline's runs to compare with, as one worker's
            self.baseline_ready.wait()
        while True:
            rush = self.most if self.sched.rush(job) else 0  # every decision after it waits for it
            keep, start = repeats.step(exp.runs, lambda runs: runs[-1].ok and more(runs), likely, rush)
            if exp.should_stop():
                return  # stale or stopping: what it ran is no result
            if keep < len(exp.runs):
                self.events.put(("surplus", job, len(exp.runs) - keep))
                del exp.runs[keep:]
            if not start:
                return
            if deferred:  # rounds: its next runs wait for the round's decision (autoresearch/rounds.py)
                deferred = False
                if not self.pause(job):
                    return
            seed = exp.seed
            batch = job.batch = Batch([RunView(exp, len(exp.runs) + i, seed + i) for i in range(start)])
            with self.lock:
                self.batches.append(batch)
                if self.closing:
                    batch.drop("the session is stopping")
                else:
                    self.events.put(("want", job, (start, repeats.confirming)))
            while not batch.done.wait(0.5):
                if exp.should_stop():  # stale or stopping: the runs not started will not be
                    batch.drop("stale or stopping")
            if batch.error is not None:
                raise batch.error
            exp.runs.extend(r for r in batch.results if r is not None)

    def likely(self, exp: Experiment, runs: tuple) -> bool:
        """Whether the verdict would keep it on these runs: the runs ahead confirm a keep."""
        verdict = self.session.config.hook.autoresearch_make_verdict(
            experiment=exp, metrics=mean_metrics(r.metrics for r in runs if r.ok), result=runs[-1], runs=runs,
            tip=self.session.sample(self.session.tip))
        return verdict.status == Status.KEEP

    def pause(self, job: Job) -> bool:
        """Rounds: wait for the round's decision; True: go on (the round's best), False: stop here."""
        job.resume, job.go = threading.Event(), False
        with self.lock:
            if self.closing:
                return False
            self.events.put(("paused", job, None))
        job.resume.wait()
        return job.go and not self.closing

    def run_one(self, job: Job, worker: int) -> None:
        batch = job.batch
        with batch.lock:
            i, batch.started = batch.started, batch.started + 1
        if i >= len(batch.views):  # dropped meanwhile (its measurement stopped): nothing to run
            self.events.put(("ran", job, worker))
            return
        view = batch.views[i]
        view.worker, view.workdir = worker, self.session.workdirs[worker]
        self.pool.submit(self.one, job, batch, i, worker)

    def one(self, job: Job, batch: Batch, i: int, worker: int) -> None:
        view = batch.views[i]
        result = None
        try:
            result = call(view)
        except BaseException as exc:  # the measurement raises it, as a run in its own thread would
            batch.error = exc
        finally:  # its measurement goes on (or raises what the run raised), and its worker is free
            batch.finish(i, result if result is not None else RunResult(
                None, 0.0, str(view.log_path), seed=view.seed, cause=Cause.INTERRUPTED, message="the run stopped"))
            self.events.put(("ran", job, worker))

    def decide(self, job: Job) -> None:
        """On the main thread; in flight until decided: a stop during its verdict records it as interrupted."""
        session, tip = self.session, self.session.tip
        if job.stale:  # rounds: a winner tried combined once already (protocol.decide: a discard)
            job.payload.stale = "discard: stale (a winner of its round, tried again combined with the kept one, not kept)"
        if self.sched.schedule == "serial" and not job.baseline and self.recount(job):
            return  # one worker would have run it more, with what is decided now: it goes on
        report = session.config.hook.autoresearch_experiment_decide(experiment=job.payload)
        if job.item.name == REMEASURED:
            kept = False
        elif job.baseline:
            kept = baseline_decided(session, report)
            if kept:
                self.baseline_ready.set()
        else:
            kept = session.tip != tip
        self.sched.decided(job, kept)
        if self.due(report) and not job.baseline:
            self.sched.insert(Item(None, REMEASURED, floating=False))

    def stop(self, exc: BaseException | None) -> None:
        """Stop every worker's run at once; what was in flight is recorded as interrupted."""
        self.session.stopping.set()
        with interrupts.deferred():  # a second Ctrl-C does not cut this short
            with self.lock:
                self.closing = True
                self.baseline_ready.set()
                for batch in self.batches:
                    batch.drop("the session is stopping")
                for job in self.sched.jobs:
                    if getattr(job, "resume", None) is not None:
                        job.resume.set()  # a paused winner: its measurement ends
            jobs = self.sched.stop()
            cf.wait(list(self.futures.values()))
            for job in jobs:
                if job.payload is not None:
                    interrupted(job.payload, exc or Stopped())

    def record_waste(self) -> None:
        """This process' wasted runs since the last record, in the ledger (status sums them)."""
        now, was = self.sched.waste, self.recorded
        delta = {k: getattr(now, k) - getattr(was, k) for k in ("stale", "cancelled", "surplus", "runs")}
        if any(delta.values()) and self.session.ledger.exists():
            self.session.ledger.append({"event": "wasted", **delta})
            self.recorded = Waste(now.stale, now.cancelled, now.surplus, now.runs)
        self.session.waste = now


@hookimpl(tryfirst=True)
def autoresearch_runloop(session):
    if session.workers <= 1:
        return None  # the default loop: one at a time
    ParallelLoop(session).run()
    return True


@hookimpl(trylast=True)
def autoresearch_sessionfinish(session, exitstatus) -> None:
    """The summary's line on wasted runs, with several workers."""
    waste = getattr(session, "waste", None)
    terminal = session.config.pluginmanager.get_plugin("terminal-reporter")
    if waste is not None and waste.runs and terminal is not None:
        terminal.write(f"{waste.line()} (schedule {session.config.get('schedule', 'serial')})")
