"""One protocol path: the measure and decide hooks, the same for one worker or many.

A plugin that wraps the measurement or replaces the decision works alike with -n 1 and -n 3:
the same results, the same branch, and its effect visible in both.
"""
from __future__ import annotations

import json
from pathlib import Path

from autoresearch.plugins.results_tsv import read_results
from conftest import git, simple, write
from test_session import run_dir

LAB = '''
    import threading

    from autoresearch import Status, Verdict, hookimpl
    from autoresearch.protocol import finish


    def note(experiment, what):
        with open(experiment.session.run_dir / "lab.log", "a") as f:
            f.write(f"{what} {experiment.name} {threading.current_thread().name}\\n")


    @hookimpl(wrapper=True)
    def autoresearch_experiment_measure(experiment):
        """Around every measurement: it is over, with its runs, when the hook returns."""
        result = yield
        note(experiment, f"measured{len(experiment.runs)}")
        return result


    @hookimpl(tryfirst=True)
    def autoresearch_experiment_decide(experiment):
        """The lab vetoes one idea, however well it does."""
        note(experiment, "decided")
        if experiment.name == "b_vetoed":
            return finish(experiment, Verdict(Status.DISCARD, "discard: vetoed by the lab"))
        return None
'''


def test_a_protocol_plugin_works_the_same_for_one_worker_and_three(repo, cli):
    write(repo / "conftest.py", LAB)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a lab plugin")
    simple(repo, "a_lr_up", "LR = 0.02\nSLEEP = 0.3")  # keep
    simple(repo, "b_vetoed", "DEPTH = 3\nSLEEP = 0.3")  # better: kept, were it not for the veto
    simple(repo, "c_lr_down", "LR = 0.001\nSLEEP = 0.3")  # discard
    simple(repo, "d_lr_more", "LR = 0.03")  # keep
    outcomes = {}
    for n in (1, 3):
        tag = f"n{n}"
        journal_path = repo / "experiments" / "journal.md"
        before = len(journal_path.read_text()) if journal_path.exists() else 0
        assert cli("run", "--tag", tag, "-n", str(n)).rc == 0
        rows = [(x["description"], x["status"], x["val_bpb"]) for x in read_results(Path("results.tsv"))]
        entries = [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]
        vetoed = next(e for e in entries if e["name"] == "b_vetoed")
        assert vetoed["status"] == "discard" and vetoed["reason"] == "discard: vetoed by the lab"
        lab = [line.split() for line in (run_dir(repo, tag) / "lab.log").read_text().splitlines()]
        names = ["baseline", "a_lr_up", "b_vetoed", "c_lr_down", "d_lr_more"]
        # every experiment measured (a stale one again, on the new tip, with -n 3), then decided once, in order
        assert {name for what, name, _ in lab if what.startswith("measured")} == set(names)
        assert all(int(what[len("measured"):]) >= 1 for what, _, _ in lab if what.startswith("measured"))
        assert [name for what, name, _ in lab if what == "decided"] == names
        assert {thread for what, _, thread in lab if what == "decided"} == {"MainThread"}
        measured_on = {thread.startswith("autoresearch-worker") for what, _, thread in lab if what.startswith("measured")}
        assert measured_on == {n > 1}  # with several workers, the measurement ran on the workers' threads
        journal = journal_path.read_text()[before:]  # this run's entries: one COMPLETED for every PLANNED
        assert journal.count("**Status**: PLANNED") == journal.count("**Status**: COMPLETED") == len(names)
        tree = git(repo, "rev-parse", f"autoresearch/{tag}^{{tree}}")
        log = git(repo, "log", "--format=%s", f"autoresearch/{tag}").splitlines()
        outcomes[n] = (rows, tree, log)
    assert outcomes[1] == outcomes[3]
    rows, _, log = outcomes[1]
    assert [s for _, s, _ in rows] == ["keep", "keep", "discard", "discard", "keep"]
    assert log == ["experiment: d_lr_more", "experiment: a_lr_up", "a lab plugin", "init"]
