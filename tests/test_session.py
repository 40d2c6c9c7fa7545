"""End-to-end sessions with the fake workload, in real git repositories.

Outcomes are known in advance: val_bpb = 1 + |LR - 0.03| * 10 + (DEPTH - 2) * 0.01, so with the
defaults (LR 0.01, DEPTH 4) the baseline scores 1.22.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autoresearch.reports import ExitCode
from conftest import git, hyp, run_subprocess, simple, spawn, write
from autoresearch.plugins.results_tsv import read_results


def alive(pid: int) -> bool:
    """True while the process runs; a zombie (killed, not yet reaped by init) counts as dead."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


def run_dir(repo: Path, tag: str = "t1") -> Path:
    return repo / ".autoresearch" / "runs" / tag


def test_full_session_all_artefacts(repo, cli):
    simple(repo, "a_lr_up", "LR = 0.02", 'val_bpb = "< baseline - 0.05"', description="raise LR to 0.02")
    simple(repo, "b_lr_down", "LR = 0.001", 'val_bpb = "< baseline"', description="lower LR to 0.001")
    simple(repo, "c_crash", 'CRASH = "exit"', description="a crash")
    simple(repo, "d_depth", "DEPTH = 3", 'val_bpb = "< baseline"\npeak_vram_mb = "<= baseline * 1.05"',
           description="one layer less")
    r = cli("run", "--tag", "t1", "--junitxml", "junit.xml")
    assert r.rc == ExitCode.OK, r

    # results.tsv: the seed's schema, baseline first, crash row zeros
    rows = read_results(repo / "results.tsv")
    head = (repo / "results.tsv").read_text().splitlines()[0]
    assert head == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert [(x["val_bpb"], x["memory_gb"], x["status"], x["description"]) for x in rows] == [
        ("1.220000", "4.0", "keep", "baseline"),
        ("1.120000", "4.0", "keep", "raise LR to 0.02"),
        ("1.310000", "4.0", "discard", "lower LR to 0.001"),
        ("0.000000", "0.0", "crash", "a crash"),
        ("1.110000", "3.0", "keep", "one layer less"),
    ]
    assert all(len(x["commit"]) == 7 for x in rows)
    assert (repo / "results.tsv").read_text() == (run_dir(repo) / "results.tsv").read_text()

    # git: the branch holds the baseline and the kept commits; discards are under refs
    branch = "autoresearch/t1"
    log = git(repo, "log", "--format=%s", branch).splitlines()
    assert log == ["experiment: one layer less", "experiment: raise LR to 0.02", "init"]
    assert git(repo, "rev-parse", "--short=7", branch) == rows[-1]["commit"]
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/autoresearch/t1").splitlines()
    assert refs == ["refs/autoresearch/t1/001-a_lr_up", "refs/autoresearch/t1/002-b_lr_down",
                    "refs/autoresearch/t1/003-c_crash", "refs/autoresearch/t1/004-d_depth"]
    discarded = git(repo, "show", "refs/autoresearch/t1/002-b_lr_down:train.py")
    assert discarded.startswith("LR = 0.001\n")
    body = git(repo, "log", "-1", "--format=%B", "refs/autoresearch/t1/002-b_lr_down")
    assert "Hypothesis: experiments/b_lr_down.toml::b_lr_down" in body
    assert "Hypothesis-Hash: " in body
    # the user's checkout is untouched, and results.tsv / state are untracked and ignored
    assert (repo / "train.py").read_text().startswith("LR = 0.01\n")
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain", "--", "train.py", "prepare.py", "results.tsv", ".autoresearch") == ""
    assert git(repo, "check-ignore", "results.tsv", ".autoresearch") == "results.tsv\n.autoresearch"

    # journal: PLANNED then COMPLETED for each, in order
    journal = (repo / "experiments" / "journal.md").read_text()
    statuses = [line for line in journal.splitlines() if line.startswith("**Status**")]
    assert statuses == ["**Status**: PLANNED", "**Status**: COMPLETED"] * 5
    assert "- LR: 0.01 → 0.02" in journal
    assert "**Delta**: confirmed — val_bpb 1.12 < 1.17 (baseline - 0.05, baseline 1.22)" in journal
    assert "- LR: 0.02 → 0.001" in journal  # b builds on the kept tip, where LR is 0.02
    assert "**Next**: Try the other direction: LR above 0.02." in journal
    assert "crash — ValueError: synthetic failure (log: " in journal
    assert "**Delta**: confirmed — val_bpb 1.11 < 1.12; peak_vram_mb 3072 <= 4300.8 (baseline * 1.05, baseline 4096)" in journal

    # lessons
    lessons = (repo / "experiments" / "lessons.md").read_text()
    assert "### LR" in lessons and "| 0.02 | 0.01 | 1.120000 | keep (confirmed) |" in lessons
    assert "**Best so far**: val_bpb 1.110000 — one layer less" in lessons

    # JUnit XML: keep and discard pass (the discard's verdict in its properties), crash errors
    suite = ET.parse(repo / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "0" and suite.get("errors") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["b_lr_down"].iter("property")}
    assert props["status"] == "discard" and props["expectation"] == "refuted"
    assert props["verdict"] == "discard: +0.1900 val_bpb after 1 run, +0 lines (not better; the runs show no noise)"
    assert cases["b_lr_down"].find("failure") is None
    assert "ValueError: synthetic failure" in cases["c_crash"].find("error").text
    # ... and with junit_refuted = "failure", the refuted expectation fails
    assert cli("run", "--resume", "--junitxml", "junit2.xml", "--junit-refuted", "failure").rc == ExitCode.OK
    suite2 = ET.parse(repo / "junit2.xml").getroot().find("testsuite")
    assert suite2.get("failures") == "1" and suite2.get("errors") == "1"
    failure = suite2.find(".//testcase[@name='b_lr_down']/failure")
    assert failure.get("type") == "refuted" and "val_bpb" in failure.get("message")
    assert cases["a_lr_up"].find("failure") is None and cases["a_lr_up"].find("error") is None
    assert cases["a_lr_up"].get("classname") == "experiments.a_lr_up"  # no ".toml" for CI reporters
    assert suite.get("hostname") and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", suite.get("timestamp"))

    # the sidecar has everything else
    entries = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    assert entries[1]["expectation"] == "confirmed" and entries[1]["nodeid"] == "experiments/a_lr_up.toml::a_lr_up"
    assert entries[2]["expectation"] == "refuted"
    assert entries[3]["root_cause"] == "ValueError: synthetic failure"
    assert Path(entries[3]["log_path"]).is_file()

    # the terminal
    assert "4 hypotheses" in r.out and "3 keep, 1 discard, 1 crash" in r.out
    assert "best val_bpb 1.110000, -0.110000 from the baseline 1.220000" in r.out


def test_workload_output_goes_to_the_log_never_the_terminal(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert "step 00001" not in r.out + r.err
    log = (run_dir(repo) / "logs" / "001-a.log").read_text()
    assert "step 00001 (100.0%)" in log and "val_bpb:" in log


@pytest.mark.parametrize("crash, cause", [
    ('"exit"', "ValueError: synthetic failure"),
    ('"nan"', "loss became NaN or exploded (the workload printed FAIL)"),
    ('"oom"', "out of memory: MemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
    ('"nosummary"', "exited 0 but printed no val_bpb: print a line `val_bpb: 1.234`, or set metric_pattern to a "
                    "regular expression with a (?P<value>...) group that reads your format"),
])
def test_crashes_are_recorded_with_root_cause_and_the_loop_goes_on(repo, cli, crash, cause):
    simple(repo, "a_crash", f"CRASH = {crash}")
    simple(repo, "b_fine", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert r.rc == 0
    rows = read_results(repo / "results.tsv")
    assert [x["status"] for x in rows] == ["keep", "crash", "keep"]
    entry = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()][1]
    assert entry["root_cause"] == cause
    assert cause in (repo / "experiments" / "journal.md").read_text()


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_timeout_kills_the_whole_process_group(repo, cli, sandbox):
    marker = f"{300 + os.getpid() % 1000}.{len(sandbox)}"  # a grandchild found by its arguments
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', f'if CRASH == "hang":\n    import subprocess\n    p = subprocess.Popen(["sleep", "{marker}"])'))
    git(repo, "commit", "-qam", "grandchild")
    simple(repo, "hang", 'CRASH = "hang"')
    start = time.monotonic()
    r = cli("run", "--tag", "t1", "--timeout", "2", "--sandbox", sandbox)
    assert time.monotonic() - start < 30
    assert r.rc == 0
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "crash"]
    assert "timeout: killed after 2s (limit 2s)" in (repo / "experiments" / "journal.md").read_text()
    assert not processes_with_argument(marker)


def processes_with_argument(arg: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if arg.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") and \
                    Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_exitfirst_stops_at_the_first_crash(repo, cli):
    simple(repo, "a", 'CRASH = "exit"')
    simple(repo, "b", "LR = 0.02")
    r = cli("run", "--tag", "t1", "-x")
    assert r.rc == ExitCode.STOPPED
    assert "-x: stopped at the first crash (experiments/a.toml::a: ValueError: synthetic failure)" in r.err
    assert len(read_results(repo / "results.tsv")) == 2


def test_baseline_crash_stops_the_session(repo, cli):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace('CRASH = ""', 'CRASH = "exit"'))
    git(repo, "commit", "-qam", "broken")
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert r.rc == ExitCode.STOPPED
    assert "the baseline crashed (ValueError: synthetic failure)" in r.err
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["crash"]


def test_higher_is_better(repo, cli):
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + 'metric = "depth"\ndirection = "maximize"\n')
    git(repo, "commit", "-qam", "maximize depth")
    simple(repo, "deeper", "DEPTH = 6")
    simple(repo, "shallower", "DEPTH = 3")
    r = cli("run", "--tag", "t1", "-v")
    rows = read_results(repo / "results.tsv")
    assert rows[0]["commit"] and list(rows[0])[1] == "depth"
    assert [(x["depth"], x["status"]) for x in rows] == [("4.000000", "keep"), ("6.000000", "keep"), ("3.000000", "discard")]
    assert "keep: +2.0000 depth after 1 run, +0 lines (better; the runs show no noise)" in r.out


def test_baseline_initial_and_named(repo, cli):
    simple(repo, "a", "LR = 0.02")
    hyp(repo, "b", 'description = "from initial"\nhypothesis = "x"\nbaseline = "initial"\n[set]\nDEPTH = 3\n')
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    rows = read_results(repo / "results.tsv")
    # b is built on the initial commit (LR 0.01, DEPTH 3 -> 1.21), better than its baseline 1.22
    # but not than the tip (1.12): discarded, with that reason
    assert rows[2]["val_bpb"] == "1.210000" and rows[2]["status"] == "discard"
    entry = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()][2]
    assert "not than the branch tip" in entry["reason"]
    assert git(repo, "show", "refs/autoresearch/t1/002-b:train.py").startswith("LR = 0.01\nDEPTH = 3\n")


def test_new_tag_refuses_an_existing_run_and_branch(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and "run tag 't1' already exists; continue it with --resume" in r.err
    git(repo, "branch", "autoresearch/t2")
    r = cli("run", "--tag", "t2")
    assert r.rc == 4 and "branch autoresearch/t2 already exists: resume that run with --resume --tag t2" in r.err


def test_resume_runs_only_what_is_new(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    simple(repo, "b", "DEPTH = 3")
    r = cli("run", "--resume")
    assert r.rc == 0, r
    rows = read_results(repo / "results.tsv")
    assert [x["description"] for x in rows] == ["baseline", "a", "b"]
    assert git(repo, "log", "-1", "--format=%s", "autoresearch/t1") == "experiment: b"
    r = cli("run", "--resume", "--tag", "nope")  # a tag that recorded nothing: --resume starts it, saying so
    assert r.rc == 0 and "run 'nope' has recorded nothing yet" in r.err and "(other runs here: t1)" in r.err


def test_dirty_editable_file_is_refused(repo, cli):
    simple(repo, "a", "LR = 0.02")
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# edited\n")
    r = cli("run", "--tag", "t1")
    assert r.rc == 4
    assert "train.py has uncommitted changes; commit or stash them first" in r.err


def test_not_a_repository_and_no_commit(tmp_path, monkeypatch, cli):
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text("LR = 1\n")
    simple(root, "a", "LR = 2")
    monkeypatch.chdir(root)
    r = cli("run")
    assert r.rc == 4 and "is not a git repository" in r.err and "-p no:git" in r.err
    git(root, "init", "-q")
    r = cli("run")
    assert r.rc == 4 and "the repository has no commit yet" in r.err


def test_without_git_experiments_run_in_a_scratch_copy(tmp_path, monkeypatch, cli):
    root = tmp_path / "p"
    root.mkdir()
    from conftest import FAKE_TRAIN

    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n')
    simple(root, "a", "LR = 0.001")
    simple(root, "b", "LR = 0.02")
    monkeypatch.chdir(root)
    r = cli("run", "-p", "no:git", "--tag", "t1")
    assert r.rc == 0, r
    assert [x["status"] for x in read_results(root / "results.tsv")] == ["keep", "discard", "keep"]
    work = root / ".autoresearch" / "runs" / "t1" / "workdir" / "train.py"
    assert work.read_text().startswith("LR = 0.02\n")  # the discard was undone, the keep stayed
    assert (root / "train.py").read_text().startswith("LR = 0.01\n")


def test_protected_file_changed_mid_run_stops_cleanly(repo, cli):
    simple(repo, "a", "LR = 0.02")
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'val = 1.0', f'open("{repo / "prepare.py"}", "a").write("# tampered\\n")\nval = 1.0'))
    git(repo, "commit", "-qam", "tamper")
    r = cli("run", "--tag", "t1", "--sandbox", "off")  # in the sandbox the write would fail: a crash
    assert r.rc == 4
    assert "prepare.py in your checkout changed while 000-baseline ran" in r.err
    # caught right after the run that changed it (the baseline's own): that result is not recorded
    assert [x["status"] for x in read_results(repo / "results.tsv")] == []


def test_patch_that_no_longer_applies_after_a_keep_is_a_discard_that_names_the_conflict(repo, cli):
    hyp(repo, "a", 'description = "a"\nhypothesis = "x"\n[[replace]]\nold = "LR = 0.01"\nnew = "LR = 0.02"\n')
    hyp(repo, "b", 'description = "b"\nhypothesis = "x"\n[[replace]]\nold = "LR = 0.01\\nDEPTH"\nnew = "LR = 0.03\\nDEPTH"\n')
    r = cli("run", "--tag", "t1")
    assert r.rc == 0
    rows = read_results(repo / "results.tsv")
    assert [x["status"] for x in rows] == ["keep", "keep", "discard"]
    entry = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()][2]
    assert entry["reason"].startswith("discard: conflicts with kept a: the patch does not apply to the current tip "
                                      "(replace: text not found in train.py")
    assert entry["runs"][0]["cause"] == "conflict" and entry["runs"][0]["log_path"] == ""


def test_a_deselected_named_baseline_is_a_collection_error(repo, cli):
    simple(repo, "a", "LR = 0.02")
    hyp(repo, "b", 'description = "on a"\nhypothesis = "x"\nbaseline = "a"\n[set]\nDEPTH = 3\n')
    simple(repo, "c", "LR = 0.03")
    r = cli("run", "--tag", "t1", "-k", "not a.toml")
    assert r.rc == 4, r
    assert "experiments/b.toml:1: baseline 'a' (experiments/a.toml::a) is not selected by -k" in r.err
    assert not (repo / "results.tsv").exists() and not (repo / ".autoresearch").exists()
    assert cli("run", "--tag", "t1", "-k", "not c.toml").rc == 0  # both selected: b runs after a


def test_second_runner_is_refused_and_told_who_holds_the_lock(repo):
    simple(repo, "slow", "SLEEP = 3.0")
    with spawn(repo, "run", "--tag", "t1") as first:
        deadline = time.monotonic() + 20
        while not (run_dir(repo) / "logs" / "001-slow.log").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run_subprocess(repo, "run", "--tag", "t2")
        assert second.returncode == 4
        assert "another autoresearch run holds" in second.stderr and f"pid {first.pid}, tag t1" in second.stderr
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_conftest_plugin_and_blocking(repo, cli):
    write(repo / "conftest.py", '''
        from autoresearch import hookimpl

        @hookimpl
        def autoresearch_parse_metrics(experiment, log_path):
            return {"twice_depth": 2 * float(open(log_path).read().split("depth:")[1].split()[0])}
    ''')
    simple(repo, "a", "DEPTH = 3", 'twice_depth = "== 6"')
    r = cli("run", "--tag", "t1", "-p", "no:journal", "-p", "no:lessons")
    assert r.rc == 0, r
    entry = [json.loads(x) for x in (run_dir(repo) / "results.jsonl").read_text().splitlines()][1]
    assert entry["metrics"]["twice_depth"] == 6.0 and entry["expectation"] == "confirmed"
    assert not (repo / "experiments" / "journal.md").exists()
    assert not (repo / "experiments" / "lessons.md").exists()


def test_plugin_with_unknown_hook_is_an_error(repo, cli):
    write(repo / "conftest.py", '''
        def autoresearch_make_verdit(experiment, metrics, result):
            return None
    ''')
    r = cli("run", "--collect-only")
    assert r.rc == 4
    assert ("plugin 'conftest' implements unknown hook 'autoresearch_make_verdit' "
            "(did you mean 'autoresearch_make_verdict'?)") in r.err


def test_user_verdict_plugin_replaces_the_builtin(repo, cli):
    write(repo / "conftest.py", '''
        from autoresearch import Verdict, hookimpl

        @hookimpl(tryfirst=True)
        def autoresearch_make_verdict(experiment, metrics, result):
            if experiment.hypothesis is not None:
                return Verdict("discard", "discard: this lab discards everything")
    ''')
    simple(repo, "a", "LR = 0.02")
    cli("run", "--tag", "t1")
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "discard"]


def test_essential_plugins_cannot_be_blocked(repo, cli):
    r = cli("run", "-p", "no:execute")
    assert r.rc == 4 and "execute is essential and cannot be blocked" in r.err


@pytest.mark.parametrize("ignored", [False, True], ids=["foreground", "started-with-sigint-ignored"])
def test_sigint_records_interrupted_and_resets(repo, ignored):
    """Ctrl-C works also in a runner started as `cmd &` in a script, where SIGINT is ignored."""
    simple(repo, "slow", "SLEEP = 30.0")
    pidfile = run_dir(repo) / "workload.pid"
    with spawn(repo, "run", "--tag", "t1", ignore_sigint=ignored) as proc:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pidfile.exists() and (run_dir(repo) / "logs" / "001-slow.log").exists():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        workload = int(pidfile.read_text())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not alive(workload)
    assert git(repo, "log", "-1", "--format=%s", "autoresearch/t1") == "init"
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep"]
    journal = (repo / "experiments" / "journal.md").read_text()
    assert "interrupted — interrupted by SIGINT (Ctrl-C) before the run finished" in journal
    assert "1 keep, 1 interrupted" in out


def test_command_as_one_string_is_split_like_a_shell_would(repo, cli):
    (repo / "pyproject.toml").write_text(f"[tool.autoresearch]\ncommand = \"'{sys.executable}' train.py\"\n")
    git(repo, "commit", "-qam", "string command")
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    simple(repo, "b", "DEPTH = 3")
    r = cli("run", "--resume", "--command", f"{sys.executable} -u train.py", "-v")
    assert f"command: {sys.executable} -u train.py in" in r.out
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "keep", "keep"]


def test_run_dot_collects_only_hypothesis_files(repo, cli):
    simple(repo, "a", "LR = 0.02")
    write(repo / "tests" / "test_x.py", 'TEXT = """\n@hypothesis(description="in a test")\n"""\nraise SystemExit(1)\n')
    write(repo / "tools" / "script.py", "import autoresearch\nraise SystemExit('a script, not a hypothesis file')\n")
    r = cli("run", "--collect-only", ".")
    assert r.rc == 0, r
    assert [line for line in r.out.splitlines() if "::" in line] == ["experiments/a.toml::a"]


def test_commits_without_any_git_identity(repo):
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "--unset", "user.name")
    simple(repo, "a", "LR = 0.02")
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    r = run_subprocess(repo, "run", "--tag", "t1", env=env)
    assert r.returncode == 0, r.stderr
    assert git(repo, "log", "-1", "--format=%an <%ae>", "autoresearch/t1") == "autoresearch <autoresearch@localhost>"
