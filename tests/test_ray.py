"""The Ray executor, against a real local Ray (started by the runner for its session, 2 CPUs here).

Each run is a Ray task that unpacks the experiment's commit, runs the workload in its own process
group and streams its output back into the local log while it runs.
"""
from __future__ import annotations

import json
import signal
import sys
import time

import pytest

from autoresearch import procs
from autoresearch.plugins.results_tsv import read_results
from conftest import git, run_subprocess, simple, spawn, write
from test_pluginsystem import RECORDER
from test_session import run_dir

pytest.importorskip("ray")  # the dev extra installs it: CI runs these


def rows(repo):
    return [(x["description"], x["status"], x["val_bpb"]) for x in read_results(repo / "results.tsv")]


def test_ray_gives_the_same_results_and_streams_the_output_while_it_runs(repo, tmp_path):
    write(tmp_path / "site" / "recorder.py", RECORDER)
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        "time.sleep(SLEEP)", 'print("step 00001 (1.0%) | loss 3.250000 | remaining 9s", flush=True)\ntime.sleep(SLEEP)'))
    git(repo, "commit", "-qam", "an early progress line")
    simple(repo, "a", "LR = 0.02\nSLEEP = 2.0")
    simple(repo, "b", "LR = 0.001")
    simple(repo, "c", 'CRASH = "exit"')
    local = run_subprocess(repo, "run", "--tag", "local")
    assert local.returncode == 0, local.stderr
    expected = rows(repo)
    events = tmp_path / "events.jsonl"
    r = run_subprocess(repo, "run", "--tag", "ray", "--executor", "ray", "-n", "2", "-p", "recorder",
                       env={"PYTHONPATH": str(tmp_path / "site"), "RECORD_TO": str(events)})
    assert r.returncode == 0, r.stderr
    assert rows(repo) == expected
    log = (run_dir(repo, "ray") / "logs" / "001-a.log").read_text()
    assert "step 00001 (1.0%)" in log and "val_bpb:" in log
    # the progress line reached the runner while the task still ran (it sleeps 2 s after it)
    progress = [e for e in map(json.loads, events.read_text().splitlines()) if e[0] == "progress" and e[1] == "a"]
    # (judged against the run's own clock, not the wall: under load the task starts late)
    seen = [e[2] for e in progress if e[3].startswith("step 00001 (1.0%)")]
    assert seen and max(e[2] for e in progress) - min(seen) >= 1.0, progress


def test_ray_kills_a_hung_run_at_the_timeout_process_group_and_all(repo, cli, tmp_path):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', 'if CRASH == "hang":\n    import subprocess\n    subprocess.Popen(["sleep", "300"])'))
    git(repo, "commit", "-qam", "a grandchild")
    simple(repo, "a", 'CRASH = "hang"')
    r = cli("run", "--tag", "t1", "--executor", "ray", "--timeout", "3")
    assert r.rc == 0, r
    entry = json.loads((run_dir(repo) / "results.jsonl").read_text().splitlines()[1])
    assert entry["status"] == "crash" and entry["cause"] == "timeout"
    deadline = time.monotonic() + 10
    while procs.marked(run_dir(repo)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert procs.marked(run_dir(repo)) == []  # the workload and its grandchild are gone


def test_ctrl_c_cancels_the_ray_task_and_its_workload(repo):
    simple(repo, "a", "LR = 0.02\nSLEEP = 60.0")
    with spawn(repo, "run", "--tag", "t1", "--executor", "ray") as proc:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (  # a's workload, not the baseline's, is training
                (repo / "results.tsv").exists() and read_results(repo / "results.tsv") and procs.marked(run_dir(repo))):
            time.sleep(0.2)
        time.sleep(0.5)
        assert procs.marked(run_dir(repo)), "the workload never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert procs.marked(run_dir(repo)) == []
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep"]


def test_without_ray_installed_the_executor_is_one_clear_line(repo, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1", "--executor", "ray")
    assert r.rc == 4 and "needs Ray: pip install 'autoresearch[ray]'" in r.err and "Traceback" not in r.err
