"""Several workers (-n N): the same results as one at a time, whatever N, and every stop handled.

The fake workload's outcomes depend only on its constants, so results.tsv must be the same,
row for row, for any N (tests/conftest.py).
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from autoresearch.plugins.results_tsv import read_results
from conftest import git, hyp, run_subprocess, simple, spawn, write
from test_session import alive, run_dir


def research_loop(repo: Path, sleep: float = 0.3) -> None:
    """Keeps, discards, a crash, a conflict, a named baseline, a sweep: every kind of decision."""
    simple(repo, "a_lr_up", f"LR = 0.02\nSLEEP = {sleep}")  # keep
    simple(repo, "b_lr_down", f"LR = 0.001\nSLEEP = {sleep}")  # discard, dispatched before a is kept
    simple(repo, "c_crash", f'CRASH = "exit"\nSLEEP = {sleep}')  # crash
    simple(repo, "d_depth", f"DEPTH = 3\nSLEEP = {sleep}")  # keep
    hyp(repo, "e_on_a", f'description = "on a"\nhypothesis = "x"\nbaseline = "a_lr_up"\n[set]\nDEPTH = 5\nSLEEP = {sleep}\n')
    hyp(repo, "f_conflict", 'description = "f"\nhypothesis = "x"\n[[replace]]\nold = "LR = 0.01\\n"\nnew = "LR = 0.05\\n"\n')
    hyp(repo, "g_sweep", f'description = "LR {{LR}}"\nhypothesis = "x"\n[set]\nSLEEP = {sleep}\n[sweep]\nLR = [0.03, 0.2]\n')


def rows(repo: Path) -> list[tuple[str, str, str]]:
    return [(x["description"], x["status"], x["val_bpb"]) for x in read_results(repo / "results.tsv")]


def sidecar(repo: Path, tag: str) -> list[dict]:
    return [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]


def test_the_same_results_for_any_number_of_workers(repo, cli):
    research_loop(repo)
    expected = None
    for n in (1, 2, 4):
        assert cli("run", "--tag", f"n{n}", "-n", str(n)).rc == 0
        got = rows(repo)
        expected = expected or got
        assert got == expected, n
        # the branch holds the same kept changes, in the same order
        log = git(repo, "log", "--format=%s", f"autoresearch/n{n}").splitlines()
        assert log == ["experiment: LR 0.03", "experiment: d_depth", "experiment: a_lr_up", "init"]
    assert [s for _, s, _ in expected] == ["keep", "keep", "discard", "crash", "keep", "discard", "discard",
                                            "keep", "discard"]


def test_workers_run_side_by_side_each_in_its_own_worktree(repo, cli):
    for name in ("a", "b", "c", "d"):
        simple(repo, name, f"LR = 0.00{ord(name) - 96}\nSLEEP = 1.0")  # all discards: no re-runs
    assert cli("run", "--tag", "t1", "-n", "2").rc == 0
    entries = sidecar(repo, "t1")
    spans = [(e["started"], e["started"] + e["duration"]) for e in entries[1:]]
    assert any(s2 < e1 for (s1, e1), (s2, e2) in zip(spans, spans[1:]))  # a run began before the last ended
    assert sorted(p.name for p in run_dir(repo).glob("worktree*")) == ["worktree", "worktree-1"]
    assert {e["runs"][0]["log_path"].rsplit("/", 1)[1] for e in entries} == {
        "000-baseline.log", "001-a.log", "002-b.log", "003-c.log", "004-d.log"}
    assert len(entries[0]["runs"]) == 3  # the baseline: three runs alike, then no more (no noise to measure)


def test_a_stale_experiment_runs_again_on_the_new_tip(repo, cli):
    simple(repo, "a", "LR = 0.02\nSLEEP = 0.5")  # kept: the tip moves while b runs
    simple(repo, "b", "DEPTH = 3")
    assert cli("run", "--tag", "t1", "-n", "2").rc == 0
    a, b = sidecar(repo, "t1")[1:]
    assert git(repo, "rev-parse", f"{b['commit']}^") == a["commit"]  # b was measured as the tip's child
    assert b["baseline_commit"] == a["commit"] and b["metrics"]["val_bpb"] == pytest.approx(1.11)
    journal = (repo / "experiments" / "journal.md").read_text()
    # one COMPLETED for every PLANNED: b, run again on the new tip, gets a note between its two entries
    assert journal.count("**Status**: PLANNED") == 3 and journal.count("**Status**: COMPLETED") == 3
    assert journal.count("**Re-dispatched**") == 1
    planned_b, note, completed_b = (journal.index(x) for x in ("— b\n", "**Re-dispatched**", "— b, completed"))
    assert planned_b < note < completed_b
    assert ", completed\n" in journal  # a COMPLETED part away from its PLANNED one says whose it is


def test_a_named_baseline_is_decided_before_what_builds_on_it_is_dispatched(repo, cli):
    simple(repo, "a", "LR = 0.02\nSLEEP = 0.5")
    hyp(repo, "b", 'description = "on a"\nhypothesis = "x"\nbaseline = "a"\n[set]\nDEPTH = 3\n')
    assert cli("run", "--tag", "t1", "-n", "2").rc == 0
    a, b = sidecar(repo, "t1")[1:]
    assert git(repo, "rev-parse", f"{b['commit']}^") == a["commit"]


def test_each_worker_gets_its_device_or_its_share_of_the_cores(repo, cli):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        "time.sleep(SLEEP)", 'print("env", os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("OMP_NUM_THREADS"),'
                             ' os.environ.get("AUTORESEARCH_THREADS"))\ntime.sleep(SLEEP)'))
    git(repo, "commit", "-qam", "print the env")
    simple(repo, "a", "LR = 0.02\nSLEEP = 0.5")
    simple(repo, "b", "LR = 0.001\nSLEEP = 0.5")
    assert cli("run", "--tag", "cpu", "-n", "2").rc == 0
    logs = sorted((run_dir(repo, "cpu") / "logs").glob("*.log"))
    lines = {line for log in logs for line in log.read_text().splitlines() if line.startswith("env ")}
    import os

    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert lines == {f"env None {share} {share}"}
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + 'devices = ["3", "7"]\n')
    git(repo, "commit", "-qam", "two GPUs")
    assert cli("run", "--tag", "gpu", "-n", "2").rc == 0
    by_worker = {}
    for e in sidecar(repo, "gpu"):
        line = next(x for x in Path(e["log_path"]).read_text().splitlines() if x.startswith("env "))
        by_worker.setdefault(line.split()[1], []).append(e["name"])
    assert set(by_worker) == {"3", "7"}


def test_workers_auto_without_gpus_is_one(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1", "-n", "auto", "-v")
    assert r.rc == 0 and sorted(p.name for p in run_dir(repo).glob("worktree*")) == ["worktree"]
    r = cli("run", "--tag", "t2", "-n", "0")
    assert r.rc == 4 and "workers = '0': give a number from 1 to 256, or auto" in r.err


def test_ctrl_c_stops_every_worker_and_resume_runs_what_was_in_flight(repo):
    for name in ("a", "b", "c"):
        simple(repo, name, f"LR = 0.00{ord(name) - 96}\nSLEEP = 30.0")
    with spawn(repo, "run", "--tag", "t1", "-n", "3") as proc:
        logs = run_dir(repo) / "logs"
        deadline = time.monotonic() + 30
        while len(list(logs.glob("00[123]-*.log"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        workloads = [pid for pid in map(int, _pids_in(run_dir(repo)))]
        assert len(workloads) >= 3
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not any(alive(pid) for pid in workloads)
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep"]
    for name in ("a", "b", "c"):  # quicker now: the resume runs all three
        simple(repo, name, f"LR = 0.00{ord(name) - 96}")
    r = run_subprocess(repo, "run", "--resume", "-n", "3")
    assert r.returncode == 0, r.stderr
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a", "b", "c"]


def _pids_in(run: Path) -> list[str]:
    from autoresearch import procs

    return [str(p) for p in procs.marked(run)]


def test_sigkill_with_workers_in_flight_then_resume_loses_and_doubles_nothing(repo):
    write(repo / "conftest.py", '''
        import os, signal
        from autoresearch import hookimpl

        @hookimpl
        def autoresearch_experiment_logreport(report):
            if report.name == "b" and os.environ.get("KILL"):
                os.kill(os.getpid(), signal.SIGKILL)  # a, c, d are in flight or waiting
    ''')
    git(repo, "add", "conftest.py")
    git(repo, "commit", "-qm", "killer")
    for name in ("a", "b", "c", "d"):
        simple(repo, name, f"LR = 0.00{ord(name) - 96}\nSLEEP = 0.4")
    reference = run_subprocess(repo, "run", "--tag", "ref", "-n", "1")
    assert reference.returncode == 0
    expected = rows(repo)
    first = run_subprocess(repo, "run", "--tag", "t1", "-n", "3", env={"KILL": "1"})
    assert first.returncode == -signal.SIGKILL
    second = run_subprocess(repo, "run", "--resume", "-n", "3")
    assert second.returncode == 0, second.stderr
    assert rows(repo) == expected
    assert [e["seq"] for e in sidecar(repo, "t1")] == [0, 1, 2, 3, 4]


def test_exitfirst_with_workers_records_the_same_rows_as_one_worker(repo, cli):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", 'CRASH = "exit"')
    simple(repo, "c", "LR = 0.03\nSLEEP = 0.5")
    r1 = cli("run", "--tag", "x1", "-x")
    one = rows(repo)
    r3 = cli("run", "--tag", "x3", "-x", "-n", "3")
    assert r1.rc == r3.rc == 1 and rows(repo) == one == [
        ("baseline", "keep", "1.220000"), ("a", "keep", "1.120000"), ("b", "crash", "0.000000")]


def test_parallel_repeats_give_one_workers_verdicts_and_runs(repo, cli):
    """Runs that differ by seed: the baseline's repeats, a keep's confirmation runs and a grey
    zone's runs go to free workers at once, each with the seed one worker would have given it."""
    train = repo / "train.py"
    train.write_text(train.read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.01"))
    git(repo, "commit", "-qam", "seed-dependent values")
    simple(repo, "a_lr_up", "LR = 0.02\nSLEEP = 0.2")  # kept, after its confirmation runs
    simple(repo, "b_lr_down", "LR = 0.001")  # discarded on its first run
    simple(repo, "c_depth", "DEPTH = 3")  # better by less than the noise: the grey zone, run by run
    seen = {}
    for n in (1, 3):
        assert cli("run", "--tag", f"n{n}", "-n", str(n)).rc == 0
        seen[n] = [(e["name"], e["status"], e["reason"], [(r["seed"], r["metrics"]["val_bpb"]) for r in e["runs"]])
                   for e in sidecar(repo, f"n{n}")]
    assert seen[3] == seen[1]
    runs = {name: len(r) for name, _, _, r in seen[1]}
    assert runs["baseline"] == 5 and runs["a_lr_up"] == 5 and runs["b_lr_down"] == 1 and runs["c_depth"] > 2
    assert [s for _, s, _, _ in seen[1]] == ["keep", "keep", "discard", "discard"]
    logs = {p.name for p in (run_dir(repo, "n3") / "logs").glob("001-a_lr_up*.log")}
    assert logs == {"001-a_lr_up.log", *(f"001-a_lr_up.{i}.log" for i in range(1, 5))}


def test_the_tip_is_remeasured_with_workers_as_with_one(repo, cli):
    """remeasure_every = 2: the tip runs once more after every second decision, with -n 3 as with
    -n 1: the same rows (the re-measurements among them, at the same places), the same runs,
    seeds, values and verdicts. The values differ by seed, so a re-measurement changes what the
    candidates after it are compared with (and how many runs they need): with -n 3 they were
    measured before it, and their runs are counted again at their decision."""
    from test_verdict import NOISY

    train = repo / "train.py"
    train.write_text(train.read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.001").replace(*NOISY))
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "remeasure_every = 2\n")
    git(repo, "commit", "-qam", "noisy values; the tip re-measured every 2 decisions")
    simple(repo, "a_lr_up", "LR = 0.02\nSLEEP = 0.2")  # kept after its confirmation runs
    simple(repo, "b_close", "LR = 0.0199")  # within the noise of the tip: the grey zone
    simple(repo, "c_worse", "LR = 0.001")  # worse: one run
    simple(repo, "d_close", "LR = 0.0201\nSLEEP = 0.1")
    simple(repo, "e_worse", "DEPTH = 6")
    simple(repo, "f_close", "LR = 0.02005")
    seen = {}
    for n in (1, 3):
        assert cli("run", "--tag", f"n{n}", "-n", str(n)).rc == 0
        seen[n] = [(e["name"], e["description"], e["status"], e["reason"],
                    [(r["seed"], r["metrics"]["val_bpb"]) for r in e["runs"]]) for e in sidecar(repo, f"n{n}")]
    tip = {n: [row for row in seen[n] if row[1] == "the tip, re-measured"] for n in seen}
    assert tip[3] == tip[1] and len(tip[1]) == 2  # after c and after e: the same seeds, values, reasons
    assert [row for row in seen[3] if row not in tip[3]] == [row for row in seen[1] if row not in tip[1]]
    # (a re-measurement's number comes after those of the experiments dispatched before it was due)
    assert [row[0] for row in seen[1]] == ["baseline", "a_lr_up", "b_close", "c_worse", "baseline", "d_close",
                                           "e_worse", "baseline", "f_close"]
