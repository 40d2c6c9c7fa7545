"""The Ray executor, against a real local Ray (started by the runner for its session, 2 CPUs here).

Each run is a Ray task that unpacks the experiment's commit, runs the workload in its own process
group and streams its output back into the local log while it runs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autoresearch import procs
from autoresearch.plugins.results_tsv import read_results
from conftest import git, run_subprocess, simple, spawn, stop_everything_under, write
from test_pluginsystem import RECORDER
from test_session import run_dir

pytest.importorskip("ray", reason="ray is not installed (pip install 'autoresearch[ray]'; the dev extra has it)")

RAY_CLI = "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"  # `ray`, from this Python


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


def test_a_ray_that_does_not_start_is_one_clear_line(repo, cli, monkeypatch):
    """Ray raises a bare Exception when its node times out at start-up (seen on a loaded machine)."""
    import ray

    def timed_out(*args, **kwargs):
        raise Exception("The current node timed out during startup. This could happen because some of the "
                        "raylet failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1", "--executor", "ray")
    assert r.rc == 4 and "a local Ray did not start (The current node timed out" in r.err, r
    assert "Traceback" not in r.err and "internal error" not in r.err


def test_a_commit_is_put_in_rays_object_store_once_for_all_its_runs(repo, cli, monkeypatch):
    import ray

    from autoresearch.runfolder import Tree

    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: (puts.append(value), real_put(value, **kw))[1])
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "LR = 0.001")
    r = cli("run", "--tag", "t1", "--executor", "ray")
    assert r.rc == 0, r
    entries = [json.loads(line) for line in (run_dir(repo) / "results.jsonl").read_text().splitlines()]
    runs = sum(len(e["runs"]) for e in entries)
    commits = {e["commit"] for e in entries}
    assert runs > len(commits) == 3  # the baseline's repeats, a keep's confirmation: several runs of a commit
    assert sum(isinstance(p, Tree) for p in puts) == len(commits)


def ray_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # a session of its own: the cluster's daemons outlive `ray start`, and no signal to the test's group reaches them
    return subprocess.run([sys.executable, "-c", RAY_CLI, *args], capture_output=True, text=True, env=env, timeout=180,
                          start_new_session=True)


def cluster_processes(temp_dirs: list[str]) -> list[int]:
    """The processes of the test's own Ray cluster: those whose command line names its temp folders."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if any(d in cmdline for d in temp_dirs):
                found.append(int(entry.name))
    return found


def test_runs_are_scheduled_on_both_nodes_of_a_two_node_cluster(repo):
    """A head node and a second node (with a custom resource of its own), one CPU each, on this
    machine: two runs in flight at once must go one to each node, and each run's log names its node.

    Every process of the cluster is stopped in finally, found by the cluster's own temp folders (not
    `ray stop --force`, which would stop every Ray on the machine, other sessions' included)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temps = [tempfile.mkdtemp(prefix="arh-"), tempfile.mkdtemp(prefix="arw-")]  # short: socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}  # a local test cluster
    address = f"127.0.0.1:{port}"
    try:
        head = ray_cli("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                       "--num-gpus=0", "--include-dashboard=false", "--resources={\"head_node\": 1}",
                       f"--temp-dir={temps[0]}", env=env)
        assert head.returncode == 0, head.stderr[-3000:]
        second = ray_cli("start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                         "--num-gpus=0", "--resources={\"second_node\": 1}", f"--temp-dir={temps[1]}", env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + f'ray_address = "{address}"\n')
        git(repo, "commit", "-qam", "the cluster")
        simple(repo, "a", "LR = 0.02\nSLEEP = 3.0")
        simple(repo, "b", "LR = 0.001\nSLEEP = 3.0")
        r = run_subprocess(repo, "run", "--tag", "t1", "--executor", "ray", "-n", "2", env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "keep", "discard"]
        nodes = {}
        for log in sorted((run_dir(repo) / "logs").glob("*.log")):
            first = log.read_text().splitlines()[0]
            assert first.startswith("[autoresearch: Ray task on node "), first
            nodes[log.name] = first.rsplit("(", 1)[1].rstrip(")]")
        listed = subprocess.run(
            [sys.executable, "-c", "import json, ray; ray.init(address=%r, log_to_driver=False); "
             "print(json.dumps({n['NodeID']: sorted(n['Resources']) for n in ray.nodes() if n['Alive']}))" % address],
            capture_output=True, text=True, env=env, timeout=180)
        assert listed.returncode == 0, listed.stderr[-3000:]
        resources = json.loads(listed.stdout.strip().splitlines()[-1])
        assert len(resources) == 2 and set(nodes.values()) == set(resources), (nodes, resources)
        assert any("second_node" in r for r in resources.values()) and any("head_node" in r for r in resources.values())
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in cluster_processes(temps):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while cluster_processes(temps) and time.monotonic() < deadline:
                time.sleep(0.2)
        stop_everything_under(repo)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
        assert cluster_processes(temps) == []
