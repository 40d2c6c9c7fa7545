"""The journal's promise under any sequence of stops: every PLANNED entry gets exactly one COMPLETED
(or interrupted) entry, for every experiment, with one worker or several.

A model of the runner drives the journal plugin through random runner lives: each starts (the
session-start hook, then the reports a killed runner finished but never logged), plans experiments
(again on a new tip, as several workers do), and ends each one as done, interrupted by a graceful
stop, or not at all (a SIGKILL at any point of it: before its report is in the ledger, after, or
after the journal has it). The model's ledger says what a resumed runner knows, as the real one does.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from autoresearch.plugins import journal as journal_plugin

TAG = "t1"
ENDS = ("done", "interrupted", "stopped-in-setup", "kill-before-plan", "kill-planned", "kill-after-ledger",
        "kill-after-journal")


@dataclass
class Ledger:
    done: dict[int, str] = field(default_factory=dict)  # seq -> "done" or "interrupted"
    logged: set[int] = field(default_factory=set)


def report(seq: int, status: str) -> SimpleNamespace:
    return SimpleNamespace(seq=seq, status=status, name=f"e{seq}", nodeid=f"e{seq}")


def experiment(seq: int) -> SimpleNamespace:
    return SimpleNamespace(seq=seq, name=f"e{seq}", nodeid=f"e{seq}", session=SimpleNamespace(tag=TAG),
                           base_commit="b" * 40, commit="c" * 40)


def life(path, ledger: Ledger, plan: list[tuple[int, bool, str]]) -> bool:
    """One runner's life; False if it was killed."""
    j = journal_plugin.Journal(path)
    unlogged = [report(s, st_) for s, st_ in sorted(ledger.done.items()) if s not in ledger.logged]
    j.autoresearch_sessionstart(SimpleNamespace(tag=TAG, history=[report(s, x) for s, x in ledger.done.items()],
                                                unlogged=unlogged))
    for r in unlogged:  # main.py logs them before anything runs
        j.autoresearch_experiment_logreport(report=r)
        ledger.logged.add(r.seq)
    for seq, again, end in plan:
        if ledger.done.get(seq) == "done":
            continue
        if end == "kill-before-plan":
            return False
        if end == "stopped-in-setup":  # a graceful stop before its PLANNED entry: recorded as interrupted
            ledger.done[seq] = "interrupted"
            ledger.logged.discard(seq)
            j.autoresearch_experiment_logreport(report=report(seq, "interrupted"))
            ledger.logged.add(seq)
            return True
        j.autoresearch_experiment_logstart(experiment=experiment(seq))
        if again:  # measured on a tip that moved: run again on the new one
            j.autoresearch_experiment_logstart(experiment=experiment(seq))
        if end == "kill-planned":
            return False
        status = "interrupted" if end == "interrupted" else "done"
        ledger.done[seq] = status
        ledger.logged.discard(seq)
        if end == "kill-after-ledger":
            return False
        j.autoresearch_experiment_logreport(report=report(seq, status))
        if end == "kill-after-journal":
            return False
        ledger.logged.add(seq)
        if status == "interrupted":  # a graceful stop ends the runner
            return True
    return True


plans = st.lists(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.sampled_from(ENDS)), max_size=6),
                 min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(plans)
def test_every_planned_entry_gets_one_completed_entry_whatever_stops_it(tmp_path_factory, lives):
    path = tmp_path_factory.mktemp("journal") / "journal.md"
    ledger = Ledger()
    real = journal_plugin.planned, journal_plugin.completed
    journal_plugin.planned = lambda exp, now: f"\n### x — {exp.name}\n\n**Status**: PLANNED\n"
    journal_plugin.completed = lambda r, unit="GPU": f"\n**Status**: COMPLETED\n**Actual outcome**: {r.status}\n"
    try:
        for plan in lives:
            life(path, ledger, plan)
        # at last a runner that is never stopped finishes what is left
        life(path, ledger, [(s, False, "done") for s in range(4)])
    finally:
        journal_plugin.planned, journal_plugin.completed = real
    text = path.read_text()
    balance = Counter()
    for seq, kind in re.findall(rf"<!-- autoresearch {TAG} (\d+) (planned|completed) -->", text):
        balance[int(seq)] += 1 if kind == "planned" else -1
        assert balance[int(seq)] in (0, 1), text  # a COMPLETED entry never comes before its PLANNED one
    assert not any(balance.values()), (balance, text)
    assert text.count("**Status**: PLANNED") == text.count("**Status**: COMPLETED"), text
    finals = re.findall(r"\*\*Actual outcome\*\*: done", text)
    assert len(finals) == 4, text  # one result for each experiment, never two
