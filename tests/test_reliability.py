"""Reliability: kills and restarts, signals, workload faults, repository faults, bad input.

Each test pins one guarantee listed in the README's "Guarantees" section.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest

from autoresearch.plugins.results_tsv import read_results
from autoresearch.reports import ExitCode
from conftest import git, hyp, run_subprocess, simple, spawn, write
from test_session import alive, run_dir

# A plugin that SIGKILLs the runner at one point of the protocol, for the experiment named "b".
KILLER = '''
import os, signal
from autoresearch import hookimpl

POINT = os.environ.get("KILL_AT")


def maybe(point, experiment):
    if POINT == point and experiment.name == "b":
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl(trylast=True)  # after the core applied the patch, before git commits it
def autoresearch_experiment_setup(experiment):
    maybe("patched", experiment)


@hookimpl
def autoresearch_experiment_logstart(experiment):
    maybe("committed", experiment)


@hookimpl
def autoresearch_experiment_progress(experiment, elapsed, line, loss):
    maybe("training", experiment)


@hookimpl
def autoresearch_parse_metrics(experiment, log_path):
    maybe("trained", experiment)


@hookimpl(tryfirst=True)  # results and journal are written; the branch is not yet reset
def autoresearch_experiment_teardown(experiment, report):
    maybe("logged", experiment)
'''


@pytest.mark.parametrize("point", ["patched", "committed", "training", "trained", "logged"])
def test_sigkill_at_each_point_then_resume(repo, point):
    write(repo / "conftest.py", KILLER)
    git(repo, "add", "conftest.py")
    git(repo, "commit", "-qm", "killer plugin")
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "DEPTH = 3\nSLEEP = 1.0")
    simple(repo, "c", "LR = 0.001")
    first = run_subprocess(repo, "run", "--tag", "t1", env={"KILL_AT": point})
    assert first.returncode == -signal.SIGKILL
    assert [x["description"] for x in read_results(repo / "results.tsv")][:2] == ["baseline", "a"]
    stale = int((run_dir(repo) / "workload.pid").read_text())

    second = run_subprocess(repo, "run", "--resume")
    assert second.returncode == 0, second.stderr
    assert not alive(stale)  # a workload left training by the killed runner is stopped
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("a", "keep"), ("b", "keep"), ("c", "discard")]  # none lost, none twice
    assert [x["val_bpb"] for x in rows] == ["1.220000", "1.120000", "1.110000", "1.300000"]
    assert git(repo, "log", "--format=%s", "autoresearch/t1").splitlines() == [
        "experiment: b", "experiment: a", "killer plugin", "init"]
    assert git(repo, "rev-parse", "--short=7", "autoresearch/t1") == rows[2]["commit"]
    assert git(repo, "show", "refs/autoresearch/t1/002-b:train.py").startswith("LR = 0.02\nDEPTH = 3\n")
    worktree = run_dir(repo) / "worktree"
    assert git(worktree, "status", "--porcelain") == ""
    sidecar = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in sidecar] == [0, 1, 2, 3]
    journal = (repo / "experiments" / "journal.md").read_text()
    # every PLANNED entry has its COMPLETED one, across the kill
    assert journal.count("**Status**: PLANNED") == journal.count("**Status**: COMPLETED")
    if point == "logged":  # b's report was in the ledger: it was finished, and is not run again
        assert "the runner stopped during" not in journal and journal.count("### ") == 4
    elif point in ("training", "trained"):  # b's PLANNED entry was written: closed as interrupted
        assert "interrupted — the runner stopped during experiment 2; it runs again below" in journal


def test_killed_before_its_ledger_existed_can_resume(repo, cli, monkeypatch):
    import autoresearch.loop as loop

    simple(repo, "a", "LR = 0.02")
    real_run_baseline = loop.run_baseline

    def die(session):  # the worktree and the branch exist by now
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "run_baseline", die)
    assert cli("run", "--tag", "t1").rc == 130
    monkeypatch.setattr(loop, "run_baseline", real_run_baseline)
    (run_dir(repo) / "ledger.jsonl").unlink()  # as if the kill came before the first ledger line
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and "branch autoresearch/t1 already exists: resume that run with --resume" in r.err
    r = cli("run", "--resume", "--tag", "t1")
    assert r.rc == 0, r
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]


def wait_for_workload(repo: Path, log: str) -> int:
    pidfile = run_dir(repo) / "workload.pid"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if pidfile.exists() and (run_dir(repo) / "logs" / log).exists():
            time.sleep(0.5)
            return int(pidfile.read_text())
        time.sleep(0.05)
    raise AssertionError("the workload never started")


def test_sigterm_records_interrupted_resets_and_exits_143(repo):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "slow", "SLEEP = 60.0")
    with spawn(repo, "run", "--tag", "t1") as proc:
        workload = wait_for_workload(repo, "002-slow.log")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.TERMINATED == 143, err
    assert not alive(workload)
    assert git(repo, "log", "-1", "--format=%s", "autoresearch/t1") == "experiment: a"  # reset to the kept tip
    assert git(run_dir(repo) / "worktree", "status", "--porcelain") == ""
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "keep"]  # not a crash
    assert "interrupted — interrupted by SIGTERM before the run finished" in (repo / "experiments" / "journal.md").read_text()
    # the interrupted hypothesis is not a result: resuming runs it
    simple(repo, "slow", "SLEEP = 0.0")
    assert run_subprocess(repo, "run", "--resume").returncode == 0
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a", "slow"]


# -------------------------------------------------------------------------------------------
# Workload faults: each a recorded result with a root cause, and the loop goes on


def test_workload_killed_from_outside(repo, cli):
    simple(repo, "a", 'CRASH = "selfkill"')
    simple(repo, "b", "LR = 0.02")
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', 'if CRASH == "selfkill":\n    os.kill(os.getpid(), 9)\nif CRASH == "hang":'))
    git(repo, "commit", "-qam", "selfkill")
    assert cli("run", "--tag", "t1").rc == 0
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "crash", "keep"]
    assert ("killed by SIGKILL from outside the runner (the kernel's out-of-memory killer sends SIGKILL)"
            in (repo / "experiments" / "journal.md").read_text())


def test_bytes_that_are_not_utf8(repo, cli):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'print("---")', 'sys.stdout.flush(); sys.stdout.buffer.write(b"\\xff\\xfe bad \\x80 bytes\\n"); sys.stdout.buffer.flush()\nprint("---")'))
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', 'if CRASH == "garbage":\n    sys.stdout.buffer.write(b"\\xc3\\x28 Error: \\xff\\n"); sys.exit(2)\nif CRASH == "hang":'))
    git(repo, "commit", "-qam", "bytes")
    simple(repo, "a", 'CRASH = "garbage"')
    assert cli("run", "--tag", "t1").rc == 0
    rows = read_results(repo / "results.tsv")
    assert [x["status"] for x in rows] == ["keep", "crash"] and rows[0]["val_bpb"] == "1.220000"
    assert "exit code 2: \ufffd( Error: \ufffd" in (repo / "experiments" / "journal.md").read_text()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_gigabyte_of_output_keeps_the_runner_flat(repo):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', 'if CRASH == "flood":\n    block = (b"x" * 1023 + b"\\n") * 1024\n'
                               '    for _ in range(1024):\n        sys.stdout.buffer.write(block)\n'
                               '    sys.stdout.buffer.flush()\nif CRASH == "hang":'))
    git(repo, "commit", "-qam", "flood")
    simple(repo, "a", 'CRASH = "flood"')
    peak = 0.0
    with spawn(repo, "run", "--tag", "t1", "-q") as proc:
        while proc.poll() is None:
            try:
                peak = max(peak, peak_rss_mb(proc.pid))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.05)
        proc.communicate()
    log = run_dir(repo) / "logs" / "001-a.log"
    # the gigabyte went through the runner; the log keeps its head and its tail (the summary), capped
    assert 50 * 2**20 < log.stat().st_size <= 100 * 2**20 + 4096
    text = log.read_bytes()
    assert b"bytes of output dropped here" in text and text.rstrip().endswith(b"depth:            4")
    assert proc.returncode == 0
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "discard"]  # same val_bpb
    assert 0 < peak < 150, f"runner peak RSS {peak:.0f} MB while its workload wrote 1 GiB"
    log.unlink()


# -------------------------------------------------------------------------------------------
# Repository faults: one clear message, nothing lost


def test_detached_head_starts_the_branch_from_that_commit(repo, cli):
    git(repo, "checkout", "-q", "--detach")
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0
    assert "note: HEAD is detached; autoresearch/t1 starts from" in r.err
    assert git(repo, "log", "-1", "--format=%s", "autoresearch/t1") == "experiment: a"


def test_missing_data_cache_is_one_clear_message(tmp_path, monkeypatch, cli):
    from conftest import ROOT

    root = tmp_path / "p"
    root.mkdir()
    for name in ("train.py", "prepare.py"):
        (root / name).write_text((ROOT / name).read_text())
    simple(root, "a", "MATRIX_LR = 0.01")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    monkeypatch.chdir(root)
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path / "nothing-here"))
    r = cli("run", "--tag", "t1")
    assert r.rc == ExitCode.STOPPED
    assert (f"autoresearch: stopped: the baseline crashed (error: no prepared data in {tmp_path}/nothing-here/data; "
            "run `python prepare.py` first); if the cause is outside train.py (data, environment), fix it and "
            "continue with --resume") in r.err


def test_full_disk_while_writing_results_leaves_no_torn_row(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "DEPTH = 3")
    import autoresearch.ledger as ledger

    from autoresearch.plugins import results_tsv

    real_replace, calls = os.replace, {"n": 0}
    real_append = results_tsv.append_exactly

    def replace(src, dst):
        if Path(dst).name == "results.tsv":
            calls["n"] += 1
            if calls["n"] == 3:  # the table in the run's folder, then the project's, at the start: fail on b's
                raise OSError(errno.ENOSPC, "No space left on device", "results.tsv")
        real_replace(src, dst)

    def append(path, data, size):  # b's row finds the disk full: nothing appended (cut back), then written whole
        return False if path.name == "results.tsv" and data.endswith(b"\tb\n") else real_append(path, data, size)

    monkeypatch.setattr(ledger.os, "replace", replace)
    monkeypatch.setattr(results_tsv, "append_exactly", append)
    r = cli("run", "--tag", "t1")
    assert r.rc == ExitCode.STOPPED
    assert "No space left on device (results.tsv); the experiment in progress was not recorded" in r.err
    text = (repo / "results.tsv").read_text()
    assert text.endswith("\n") and all(len(line.split("\t")) == 5 for line in text.splitlines())
    assert not list(repo.glob(".results.tsv.tmp")) and not list(run_dir(repo).glob(".*.tmp"))
    monkeypatch.setattr(ledger.os, "replace", real_replace)
    assert cli("run", "--resume").rc == 0
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a", "b"]


def test_bad_tag(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "../../escape")
    assert r.rc == 4 and "--tag '../../escape': a tag is letters, digits" in r.err
    assert not (repo / ".autoresearch").exists()


def test_collection_error_writes_nothing_and_creates_no_branch(repo, cli):
    simple(repo, "good", "LR = 0.02")
    hyp(repo, "bad", 'description = "x"\nhypothesis = "y"\n[set]\nLR = nan\n')
    r = cli("run", "--tag", "t1")
    assert r.rc == 4
    assert ("ERROR experiments/bad.toml:4: set.LR: nan is not a finite number (allowed: finite numbers, integers "
            "within ±2**63, strings, booleans, lists and tables of them)") in r.err
    assert not (repo / ".autoresearch").exists() and not (repo / "results.tsv").exists()
    assert git(repo, "branch", "--list", "autoresearch/*") == ""


# -------------------------------------------------------------------------------------------
# Security


def test_toml_cannot_write_outside_the_editable_files(repo, cli):
    hyp(repo, "a", 'description = "x"\nhypothesis = "y"\nfile = "../outside.py"\n[set]\nLR = 1.0\n')
    r = cli("run", "--collect-only")
    assert r.rc == 4 and "file: ../outside.py is not an editable file (editable: train.py)" in r.err
    hyp(repo, "a", 'description = "x"\nhypothesis = "y"\nfile = "prepare.py"\n[[replace]]\nold = "300"\nnew = "3"\n')
    r = cli("run", "--collect-only")
    assert r.rc == 4 and "file: prepare.py is not an editable file" in r.err


def test_set_values_are_data_never_code(repo, cli):
    hyp(repo, "a", '''description = "x"\nhypothesis = "y"\n[set]\nACT = "\\"); import os; os.system(\\"touch pwned\\"); (\\""\n''')
    assert cli("run", "--tag", "t1").rc == 0
    worktree_train = git(repo, "show", "refs/autoresearch/t1/001-a:train.py")
    assert worktree_train.splitlines()[2] == """ACT = '"); import os; os.system("touch pwned"); ("'"""
    assert not list(repo.rglob("pwned"))


def test_no_shell_for_user_strings(repo, cli):
    simple(repo, "a", "LR = 0.02", description="$(touch pwned) `touch pwned2`; rm -rf ~")
    assert cli("run", "--tag", "t1").rc == 0
    assert git(repo, "log", "-1", "--format=%s", "autoresearch/t1") == "experiment: $(touch pwned) `touch pwned2`; rm -rf ~"
    assert not list(repo.rglob("pwned*"))


def test_lock_is_released_after_a_run(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    assert cli("run", "--tag", "t2").rc == 0
    assert (repo / ".autoresearch" / "lock").read_text() == ""
