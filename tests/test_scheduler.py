"""The scheduler of -n N (autoresearch/scheduler.py, autoresearch/rounds.py) as the pure object it
is: driven here by a tiny deterministic driver with a simulated clock (as bench/bench_scale.py
drives it at scale), then the real runner in both schedules.

Serial: the decisions, their order and the values measured are one worker's, for any N and any
order in which runs finish; the runs of one measurement count in seed order. Rounds: the best
winner of a round is kept, the other winners are measured again combined with it, and the runs
this throws away are counted.
"""
from __future__ import annotations

import heapq
import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from test_session import run_dir

from autoresearch.scheduler import (
    Cancel,
    Decide,
    Item,
    Measure,
    Release,
    Repeats,
    Resume,
    Run,
)
from autoresearch.rounds import make
from conftest import simple


class Driver:
    """Each run lasts a time given by `durations` (cycled), its value is its commit's true value
    (no noise). A candidate better than its tip asks for `confirm` runs in all (a keep's
    confirmation), a worse one for one; it is kept when it beats the tip."""

    def __init__(self, workers: int, schedule: str, effects: dict[str, float], durations=(1.0,), confirm: int = 3,
                 spread: bool = True, remeasure: frozenset | None = None, grey: int = 1) -> None:
        self.sched = make(workers, schedule, judge=self.judge, spread=spread)
        self.effects, self.confirm = effects, confirm
        self.remeasure = remeasure  # the names after whose decision the tip is measured again (None: never,
        # and decisions without their run counts)
        self.grey = grey  # a worse candidate's runs: `grey`, plus one after each re-measurement of the tip
        self.remeasured = 0
        self.source = iter(effects)
        self.durations = itertools.cycle(durations)
        self.heap: list = []
        self.ids = itertools.count()
        self.now, self.tip = 0.0, 0.0
        self.decisions: list[tuple[str, bool, float]] = []
        self.measures: list[tuple[str, bool]] = []
        self.lent: list = []

    def judge(self, job):
        return job.payload["true"] > job.payload["base"], job.payload["true"]

    def pull(self):
        name = next(self.source, None)
        return None if name is None else Item(name, name)

    def launch(self, job, worker, kind):
        job.payload["inflight"] += 1
        heapq.heappush(self.heap, (self.now + next(self.durations), next(self.ids), kind, job, worker))

    def act(self, a):
        if isinstance(a, Measure):
            name = a.job.item.payload
            true = self.tip if a.job.item.name == "tip" else 0.0 if name is None else self.tip + self.effects[name]
            a.job.payload = dict(true=true, base=self.tip, runs=[], rep=Repeats(self.confirm), batch=0, waiting=0,
                                 deferred=True, cancelled=False, inflight=0)
            self.measures.append((name, a.again))
            self.launch(a.job, a.worker, "first")
        elif isinstance(a, Run):
            self.launch(a.job, a.worker, "run")
        elif isinstance(a, Cancel):
            p = a.job.payload
            p["cancelled"] = True
            p["batch"] -= a.dropped
            if not p["inflight"] and not p["batch"]:  # nothing of it runs: its measurement is over
                self.sched.measured(a.job, len(p["runs"]))
        elif isinstance(a, Resume):
            p = a.job.payload
            p["batch"], p["waiting"] = p["waiting"], 0
            self.sched.want(a.job, p["batch"])
        elif isinstance(a, Release):
            self.sched.measured(a.job, len(a.job.payload["runs"]))
        elif isinstance(a, Decide):
            p, name = a.job.payload, a.job.item.payload
            if self.sched.schedule == "serial" and name is not None and self.recount(a.job):
                return  # one worker would have run it more, with what is decided now
            if a.job.item.name == "tip":  # the tip re-measured: what is compared with changes
                self.remeasured += 1
                self.decisions.append(("tip", False, p["true"], len(p["runs"])))
                self.sched.decided(a.job, False)
                return
            kept = name is None or (not a.job.stale and p["true"] > self.tip)
            assert not kept or name is None or p["base"] == self.tip, "a keep is measured as the tip's child"
            if kept:
                self.tip = p["true"]
            if name is not None:
                self.decisions.append((name, kept, p["true"]) if self.remeasure is None else
                                      (name, kept, p["true"], len(p["runs"])))
            self.sched.decided(a.job, kept)
            if self.remeasure and name in self.remeasure:
                self.sched.insert(Item(None, "tip", floating=False))
            if name is None:
                for job in self.lent:
                    self.advance(job)
                self.lent = []

    def finished(self, job, worker, kind):
        p = job.payload
        p["inflight"] -= 1
        if kind == "run":
            self.sched.ran(job, worker)
            p["batch"] -= 1
        p["runs"].append(p["true"])
        if p["batch"] > 0:
            return
        if p["cancelled"]:
            self.sched.measured(job, len(p["runs"]))
        elif not job.baseline and not self.sched.baseline_done:
            self.sched.lend(job)
            self.lent.append(job)
        else:
            self.advance(job)

    def wanted(self, job) -> int:
        """The runs one worker would give it, with what is decided now."""
        p = job.payload
        if job.baseline:
            return 1
        return self.confirm if p["true"] > self.tip else self.grey + self.remeasured

    def recount(self, job) -> bool:
        p = job.payload
        if not self.sched.recounted(job, p["runs"], lambda runs: len(runs) < self.wanted(job)):
            return False
        p["rep"] = Repeats(self.confirm)
        self.advance(job)
        return True

    def advance(self, job):
        p = job.payload
        rush = 8 if self.sched.rush(job) else 0
        keep, start = p["rep"].step(p["runs"], lambda runs: len(runs) < self.wanted(job),
                                    None if job.baseline else (lambda runs: p["true"] > self.tip), rush)
        if keep < len(p["runs"]):
            self.sched.surplus(len(p["runs"]) - keep)
            del p["runs"][keep:]
        if start and p["deferred"] and self.sched.defers(job):
            p["deferred"], p["waiting"] = False, start
            self.sched.paused(job)
        elif start:
            p["batch"] = start
            self.sched.want(job, start, p["rep"].confirming)
        else:  # whether it would be kept now: a likely keep is decided before anything new is dispatched
            self.sched.measured(job, len(p["runs"]), None if job.baseline else p["true"] > self.tip)

    def run(self):
        while True:
            actions = self.sched.step(self.pull)
            for a in actions:
                self.act(a)
            if actions:
                continue
            if not self.heap:
                assert not self.sched.busy, "the scheduler waits for nothing"
                return self
            self.now, _, kind, job, worker = heapq.heappop(self.heap)
            self.finished(job, worker, kind)


def test_repeats_count_in_seed_order_as_one_worker_would():
    rep = Repeats(5)
    runs = [1.0]
    keep, start = rep.step(runs, lambda r: True)
    assert (keep, start) == (1, 4)  # the runs a decision is likely to need, at once
    runs += [2.0, 3.0, 4.0, 5.0]
    keep, start = rep.step(runs, lambda r: len(r) < 3)  # one worker would have stopped at the third
    assert (keep, start) == (3, 0)
    baseline = Repeats(5, opening=3)
    assert baseline.step([1.0], lambda r: True) == (1, 2)  # a deterministic baseline stops at three
    assert baseline.step([1.0, 1.0, 1.0], lambda r: True) == (3, 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=12), st.integers(1, 6), st.integers(0, 6))
def test_repeats_keep_exactly_the_runs_one_worker_would_have(values, ahead, stop_at):
    def more(runs):
        return len(runs) < stop_at and runs[-1] != 0  # any rule on the runs so far

    serial = [values[0]]
    while more(tuple(serial)) and len(serial) < len(values):
        serial.append(values[len(serial)])
    rep, runs, feed = Repeats(ahead), [values[0]], iter(values[1:])
    while True:
        keep, start = rep.step(runs, more)
        del runs[keep:]
        batch = list(itertools.islice(feed, start))
        if not start or not batch:
            break
        runs += batch
    assert runs == serial


EFFECTS = {"a": -1.0, "b": 2.0, "c": -0.5, "d": 1.0, "e": -2.0, "f": 3.0, "g": -1.0, "h": 0.5}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.lists(st.sampled_from([0.5, 1.0, 1.7, 3.0]), min_size=1, max_size=5),
       st.permutations(list(EFFECTS)))
def test_serial_decides_as_one_worker_whatever_n_and_the_order_runs_finish(workers, durations, order):
    effects = {k: EFFECTS[k] for k in order}
    one = Driver(1, "serial", effects).run()
    many = Driver(workers, "serial", effects, durations).run()
    assert many.decisions == one.decisions  # the same verdicts, in the same order, on the same values
    assert [name for name, _, _ in many.decisions] == order
    waste = many.sched.waste
    assert waste.runs >= sum(1 + 2 * kept for _, kept, _ in one.decisions)  # every run counted
    if workers == 1:
        assert waste.total == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.lists(st.sampled_from([0.5, 1.0, 1.7, 3.0]), min_size=1, max_size=5),
       st.permutations(list(EFFECTS)), st.sets(st.sampled_from(list(EFFECTS))), st.integers(1, 3))
def test_serial_with_the_tip_remeasured_decides_as_one_worker(workers, durations, order, remeasure, grey):
    """The tip re-measured after some decisions (each changes how many runs a worse candidate
    needs, as the tip's runs change its comparisons): a likely keep holds back new dispatches,
    the runs before it go ahead, and every decision counts exactly the runs one worker would
    have given it (measured before the re-measurement, recounted at its decision)."""
    effects = {k: EFFECTS[k] for k in order}
    one = Driver(1, "serial", effects, remeasure=frozenset(remeasure), grey=grey).run()
    many = Driver(workers, "serial", effects, durations, remeasure=frozenset(remeasure), grey=grey).run()
    assert many.decisions == one.decisions  # verdicts, re-measurements, values and run counts, in order
    assert [d[0] for d in one.decisions if d[0] != "tip"] == order
    assert sum(d[0] == "tip" for d in one.decisions) == len(remeasure)
    waste = many.sched.waste
    assert waste.runs >= sum(d[3] for d in one.decisions) and 0 <= waste.total <= waste.runs


def test_parallel_repeats_finish_sooner_than_one_after_another():
    effects = {k: 2.0 for k in "abcd"}  # four keeps, each confirmed by two more runs
    spread = Driver(4, "serial", effects, confirm=5).run()
    alone = Driver(4, "serial", effects, confirm=5, spread=False).run()
    assert spread.decisions == alone.decisions
    assert spread.now < alone.now


def test_rounds_keep_the_best_and_try_the_other_winners_combined_with_it():
    effects = {"a": 1.0, "b": 3.0, "c": 2.0, "d": -1.0}
    d = Driver(4, "rounds", effects).run()
    # round 1 on the baseline: d loses; b is the best winner (confirmed, kept); a and c, winners
    # too, are measured again on b, combined with it; round 2: c+b wins, a+b is stale: discarded
    assert d.decisions == [("d", False, -1.0), ("b", True, 3.0), ("c", True, 5.0), ("a", False, 4.0)]
    assert ("a", True) in d.measures and ("c", True) in d.measures and ("d", True) not in d.measures
    waste = d.sched.waste
    assert waste.stale == 3  # a's and c's first runs (round 1), a's run on b (round 2)
    assert waste.cancelled == waste.surplus == 0
    assert waste.runs == 1 + 4 + 2 + 2 + 2  # baseline, round 1, b's confirmation, round 2, c's confirmation
    assert d.tip == 5.0


def test_rounds_end_on_the_same_best_as_one_worker_on_a_deterministic_workload():
    effects = {"a": 1.0, "b": 3.0, "c": -2.0, "d": -1.0, "e": 0.5}
    serial = Driver(1, "serial", effects).run()
    rounds = Driver(3, "rounds", effects).run()
    assert rounds.tip >= serial.tip == 4.5
    assert sorted(n for n, _, _ in rounds.decisions) == sorted(effects)  # each decided once


def test_rounds_and_the_wasted_runs_with_the_real_runner(repo, cli):
    simple(repo, "a_lr_up", "LR = 0.02\nSLEEP = 0.2")  # better
    simple(repo, "b_lr_best", "LR = 0.03\nSLEEP = 0.2")  # the best: kept in round 1
    simple(repo, "c_lr_down", "LR = 0.001\nSLEEP = 0.2")  # worse
    simple(repo, "d_depth", "DEPTH = 3\nSLEEP = 0.2")  # better, a little
    assert cli("run", "--tag", "one", "-n", "1").rc == 0
    r = cli("run", "--tag", "rnd", "-n", "4", "--schedule", "rounds")
    assert r.rc == 0, r.err
    entries = {}
    for tag in ("one", "rnd"):
        rows = [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]
        entries[tag] = {e["name"]: e for e in rows}
    best = {tag: min(e["metrics"]["val_bpb"] for e in es.values() if e["status"] == "keep") for tag, es in entries.items()}
    assert best["rnd"] == best["one"]  # the same final best
    rnd = entries["rnd"]
    # round 1: b is the best of three winners, kept; a and d tried again on b; round 2: d+b kept
    assert [rnd[n]["status"] for n in ("a_lr_up", "b_lr_best", "c_lr_down", "d_depth")] == [
        "discard", "keep", "discard", "keep"]
    for name in ("a_lr_up", "d_depth"):
        assert rnd[name]["baseline_commit"] == rnd["b_lr_best"]["commit"]  # tried again, combined with b
    assert "wasted runs: 2 of 9 (22%): 2 stale (schedule rounds)" in r.out  # a's and d's first runs
    status = cli("status", "--tag", "rnd")
    assert "wasted runs: 2 of 9 (22%): 2 stale" in status.out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.lists(st.sampled_from([0.5, 1.0, 1.7, 3.0]), min_size=1, max_size=5),
       st.lists(st.sampled_from([-2.0, -1.0, 0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=12), st.integers(0, 5))
def test_rounds_decide_each_hypothesis_once_and_keep_only_children_of_the_tip(workers, durations, values, size):
    effects = {f"h{i}": v for i, v in enumerate(values)}
    d = Driver(workers, "rounds", effects, durations)
    d.sched.round_size = size or workers
    d.run()  # the Driver checks that every keep was measured on the tip
    assert sorted(n for n, _, _ in d.decisions) == sorted(effects)
    kept = [v for _, k, v in d.decisions if k]
    assert kept == sorted(kept) and (not kept or d.tip == kept[-1])  # the tip only gets better
    waste = d.sched.waste
    assert waste.cancelled == waste.surplus == 0 and waste.total <= waste.runs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c0", "c1", "c2"]), st.booleans()), min_size=1, max_size=12),
       st.integers(1, 3))
def test_the_workers_ask_whether_the_tip_is_due_as_one_worker_does(reports, every):
    """recount.Decisions.due (-n > 1, counted as decisions come) says what drift.due (the one-worker
    loop, over the history) says after every decision: a tip never measured is never due (review)."""
    from types import SimpleNamespace as NS

    from autoresearch import drift
    from autoresearch.outcomes import MEASURED, Status
    from autoresearch.recount import Decisions

    measured, other = next(iter(MEASURED)), Status.INTERRUPTED
    history = []
    config = NS(get=lambda k, d=None: {"remeasure_every": every, "remeasure_hours": 0.0}.get(k, d))
    session = NS(config=config, tip="c0", shouldstop=False, history=history)
    decisions = Decisions()
    decisions.session, decisions.sched = session, NS(jobs=[])
    for seq, (commit, ok) in enumerate(reports):
        report = NS(status=measured if ok else other, commit=commit, seq=seq, started=float(seq))
        history.append(report)
        assert decisions.due(report) == drift.due(session), (reports, seq)
