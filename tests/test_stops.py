"""Stops at the moments the random soak found wanting (tests/soak.py): each pinned here, on purpose.

The kinds: a stop between logging and the ledger's commit point; git locks a killed runner left;
a workload started but not yet recorded; a hypothesis changed while its experiment was in flight;
stops during start-up; resuming what never got going; two runners started at once.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch.plugins.results_tsv import read_results
from conftest import git, run_subprocess, simple, spawn, write
from test_reliability import KILLER
from test_session import alive, run_dir


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def killed_during_b(repo: Path, point: str, sleep: float = 0.6) -> None:
    """A run whose runner was SIGKILLed at `point` of experiment b."""
    write(repo / "conftest.py", KILLER)
    commit_all(repo, "killer plugin")
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", f"DEPTH = 3\nSLEEP = {sleep}")
    simple(repo, "c", "LR = 0.001")
    assert run_subprocess(repo, "run", "--tag", "t1", env={"KILL_AT": point}).returncode == -signal.SIGKILL


def test_stale_git_locks_a_killed_runner_left_are_removed_on_resume(repo):
    killed_during_b(repo, "committed")
    common = repo / ".git"
    admin = next((common / "worktrees").iterdir())
    left = [admin / "index.lock", admin / "HEAD.lock", common / "refs/heads/autoresearch/t1.lock",
            common / "refs/autoresearch/t1/002-b.lock"]
    for lock in left:  # as a SIGKILL of the whole group mid-write leaves them
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
    r = run_subprocess(repo, "run", "--resume")
    assert r.returncode == 0, r.stderr
    assert "removed" in r.stderr and "t1.lock, a git lock a stopped runner left" in r.stderr
    assert not list(common.rglob("*.lock"))
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a", "b", "c"]


def test_a_lock_held_by_a_git_at_work_is_not_removed(repo, cli, monkeypatch, tmp_path):
    import autoresearch.plugins.git as gitplugin

    killed_during_b(repo, "committed")
    lock = repo / ".git/refs/autoresearch/t1/002-b.lock"
    lock.write_text("")
    fake_git = tmp_path / "git"  # a process named git, at work in the repository
    fake_git.write_bytes(Path("/bin/sleep").read_bytes())
    fake_git.chmod(0o755)
    # started through a shell that exits at once: not a child of ours, as a user's git would not be
    out = subprocess.run(["sh", "-c", f"'{fake_git}' 30 >/dev/null 2>&1 & echo $!"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    busy = int(out.strip())
    try:
        monkeypatch.setattr(gitplugin, "LOCK_WAIT", 0.5)
        r = cli("run", "--resume")
        assert r.rc == 1, r  # git itself says the ref is locked: its words, and --resume advice
        assert "002-b.lock" in r.err and "continue with --resume" in r.err
        assert lock.exists()
    finally:
        os.kill(busy, signal.SIGKILL)


def test_a_workload_whose_pid_was_never_recorded_is_found_and_stopped(repo):
    killed_during_b(repo, "training", sleep=30)
    pidfile = run_dir(repo) / "workload.pid"
    workload = int(pidfile.read_text())
    assert alive(workload)
    pidfile.write_text("1")  # as if the kill came between starting the workload and recording it
    simple(repo, "b", "DEPTH = 3")  # and quicker this time
    r = run_subprocess(repo, "run", "--resume")
    assert r.returncode == 0, r.stderr
    assert not alive(workload)
    # the launcher first, then what runs inside its sandbox (the namespace's init, the workload itself)
    assert re.search(rf"stopped \d+ process(es)? a stopped runner left running \(pid {workload}\b", r.stderr), r.stderr


def test_killed_after_the_ledger_but_before_logging_is_logged_once_on_resume(repo):
    killed_during_b(repo, "logged")  # b is in the ledger; the kill came before every plugin had it
    r = run_subprocess(repo, "run", "--resume")
    assert r.returncode == 0, r.stderr
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("a", "keep"), ("b", "keep"), ("c", "discard")]
    journal = (repo / "experiments" / "journal.md").read_text()
    assert journal.count("**Status**: COMPLETED") == 4 and journal.count("**Status**: PLANNED") == 4
    ledger = [json.loads(x) for x in (run_dir(repo) / "ledger.jsonl").read_text().splitlines()]
    assert sorted(e["seq"] for e in ledger if e["event"] == "logged") == [0, 1, 2, 3]


def test_a_hypothesis_changed_while_in_flight_leaves_no_stray_row(repo):
    killed_during_b(repo, "trained")
    simple(repo, "b", "DEPTH = 5")  # edited before the resume: a new hypothesis
    r = run_subprocess(repo, "run", "--resume")
    assert r.returncode == 0, r.stderr
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("a", "keep"), ("b", "discard"), ("c", "discard")]
    branch = git(repo, "log", "--format=%s", "autoresearch/t1").splitlines()
    assert branch == ["experiment: a", "killer plugin", "init"]
    entries = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    for e in entries[1:]:  # every row's commit is under its ref
        assert git(repo, "rev-parse", f"refs/autoresearch/t1/{e['seq']:03d}-{e['name']}") == e["commit"]


def test_resume_of_a_run_killed_before_its_branch_existed_starts_it(repo, cli):
    simple(repo, "a", "LR = 0.02")
    state = repo / ".autoresearch"
    (state / "runs" / "t1").mkdir(parents=True)  # killed right after making its folder
    (state / "current").write_text("t1\n")
    r = cli("run", "--resume")
    assert r.rc == 0, r
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]


def test_resume_with_nothing_to_resume_writes_nothing(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--resume")
    assert r.rc == 4 and "no run tagged" in r.err and "to resume (runs here: none)" in r.err
    assert not (repo / ".autoresearch").exists()


SLOW_IMPORT = "import time\ntime.sleep(30)\n"


def test_a_stop_during_start_up_imports_is_a_clean_exit_code(repo, tmp_path):
    write(tmp_path / "site" / "slowplugin.py", SLOW_IMPORT)  # start-up that takes its time
    simple(repo, "a", "LR = 0.02")
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        with spawn(repo, "run", "-p", "slowplugin", env={"PYTHONPATH": str(tmp_path / "site")}) as proc:
            time.sleep(1.5)  # well into the imports, long after the interpreter started
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == code and "Traceback" not in err, (sig, err)
    assert not (repo / ".autoresearch").exists()


def test_two_runners_started_together_the_second_is_told_who_holds_the_lock(repo):
    simple(repo, "a", "LR = 0.02\nSLEEP = 2.0")
    with spawn(repo, "run", "--tag", "t1") as one, spawn(repo, "run", "--tag", "t2") as two:
        results = [p.communicate(timeout=60) for p in (one, two)]
    codes = sorted((one.returncode, two.returncode))
    assert codes == [0, 4], results
    loser = results[[one.returncode, two.returncode].index(4)][1]
    assert "another autoresearch run holds" in loser and "(unknown)" not in loser
    assert f"pid {one.pid if two.returncode == 4 else two.pid}, tag t" in loser


def test_sigterm_is_143_whatever_the_moment_the_console_script_gets_it(repo):
    """The console script's own window: once the command is over, a stop no longer changes its end."""
    simple(repo, "a", "LR = 0.02")
    r = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys; from autoresearch.__main__ import main; "
        "from autoresearch import interrupts; "
        "sys.argv = ['autoresearch', 'run', '--tag', 't1', '-q']; code = main(); "
        "os.kill(os.getpid(), signal.SIGTERM); os.kill(os.getpid(), signal.SIGINT); sys.exit(code)")],
        cwd=repo, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


VERDICT_STOPPER = '''
import os
import signal

from autoresearch import hookimpl


@hookimpl(tryfirst=True)
def autoresearch_make_verdict(experiment):
    """A stop while the named experiment's verdict is being made (it has run: not yet decided)."""
    if experiment.name == os.environ.get("STOP_IN_VERDICT"):
        os.kill(os.getpid(), getattr(signal, os.environ["STOP_WITH"]))
'''


def open_entries(journal: str) -> dict[int, int]:
    """For each experiment: its PLANNED entries less its COMPLETED (or interrupted) ones."""
    out: dict[int, int] = {}
    for seq, kind in re.findall(r"<!-- autoresearch t1 (\d+) (planned|completed) -->", journal):
        out[int(seq)] = out.get(int(seq), 0) + (1 if kind == "planned" else -1)
    return {k: v for k, v in out.items() if v}


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_during_a_verdict_closes_its_journal_entry_for_any_number_of_workers(repo, workers, signame):
    """With several workers the experiment being decided was out of the list of those in flight, so
    a stop during its verdict left its PLANNED entry open (an orphan under random stops with -n 2)."""
    write(repo / "conftest.py", VERDICT_STOPPER)
    commit_all(repo, "stopper plugin")
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "DEPTH = 3")
    r = run_subprocess(repo, "run", "--tag", "t1", "-n", workers, env={"STOP_IN_VERDICT": "a", "STOP_WITH": signame})
    assert r.returncode == 128 + getattr(signal, signame) and "Traceback" not in r.stderr, r.stderr
    journal = (repo / "experiments" / "journal.md").read_text()
    assert open_entries(journal) == {} and "**Status**: PLANNED" in journal, journal
    assert journal.count("**Status**: PLANNED") == journal.count("**Status**: COMPLETED"), journal
    r = run_subprocess(repo, "run", "--tag", "t1", "-n", workers, "--resume")
    assert r.returncode == 0, r.stderr
    assert [(x["description"], x["status"]) for x in read_results(repo / "results.tsv")] == [
        ("baseline", "keep"), ("a", "keep"), ("b", "keep")]
    journal = (repo / "experiments" / "journal.md").read_text()
    assert open_entries(journal) == {}, journal
    assert journal.count("**Status**: PLANNED") == journal.count("**Status**: COMPLETED"), journal


def test_an_interrupted_experiment_killed_when_run_again_is_closed_on_resume(repo):
    """Interrupted (Ctrl-C), then run again on --resume and SIGKILLed there: its second PLANNED entry
    is closed as interrupted on the next resume, though the ledger has it (as interrupted) already."""
    write(repo / "conftest.py", KILLER)
    commit_all(repo, "killer plugin")
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "DEPTH = 3\nSLEEP = 2")
    with spawn(repo, "run", "--tag", "t1") as proc:
        deadline = time.monotonic() + 60
        while "— b\n" not in read(repo / "experiments" / "journal.md"):  # b's PLANNED entry: it is running
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in read(repo / "experiments" / "journal.md").split("— b\n")[-1]
    r = run_subprocess(repo, "run", "--resume", env={"KILL_AT": "training"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert open_entries(read(repo / "experiments" / "journal.md")) != {}  # what the kill left open
    r = run_subprocess(repo, "run", "--resume")
    assert r.returncode == 0, r.stderr
    journal = read(repo / "experiments" / "journal.md")
    assert open_entries(journal) == {}, journal
    assert journal.count("**Status**: PLANNED") == journal.count("**Status**: COMPLETED"), journal
    assert [(x["description"], x["status"]) for x in read_results(repo / "results.tsv")] == [
        ("baseline", "keep"), ("a", "keep"), ("b", "keep")]


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
