"""The mlflow plugin, against a real MLflow: a local store, and an ``mlflow server`` process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import git, run_subprocess, simple, spawn, stop_everything_under

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


def runs_of(client: MlflowClient, name: str = "autoresearch"):
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def with_uri(repo: Path, uri: str, extra: str = "") -> None:
    text = (repo / "pyproject.toml").read_text() + f'mlflow_tracking_uri = "{uri}"\nrepeats = 1\n{extra}'
    (repo / "pyproject.toml").write_text(text)
    git(repo, "commit", "-qam", "log to mlflow")


def test_a_session_and_its_experiments_in_a_local_store(repo, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with_uri(repo, uri)
    simple(repo, "a_lr", "LR = 0.02")
    simple(repo, "b_crash", 'CRASH = "exit"')
    r = run_subprocess(repo, "run", "--tag", "t1")
    assert r.returncode == 0, r.stderr
    client = MlflowClient(tracking_uri=uri)
    parents, children = runs_of(client)
    assert len(parents) == 1 and parents[0].info.run_name == "t1" and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["autoresearch.tag"] == "t1" and parent.data.tags["autoresearch.branch"] == "autoresearch/t1"
    assert parent.data.params["metric"] == "val_bpb" and parent.data.params["repeats"] == "1"
    by_name = {c.info.run_name: c for c in children}
    assert sorted(by_name) == ["000-baseline", "001-a_lr", "002-b_crash"]
    a = by_name["001-a_lr"]
    assert a.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # the whole configuration the run used (every constant of train.py at its commit); what it changed, named
    assert a.data.params == {"LR": "0.02", "DEPTH": "4", "ACT": '"relu"', "SLEEP": "0.0", "CRASH": '""',
                             "SEED_NOISE": "0.0"}
    assert a.data.tags["autoresearch.changed"] == "LR"
    base = by_name["000-baseline"]
    assert base.data.params["LR"] == "0.01" and base.data.params["DEPTH"] == "4"
    assert by_name["002-b_crash"].data.params["CRASH"] == '"exit"'
    assert a.data.metrics["val_bpb"] == pytest.approx(1.12) and a.data.metrics["peak_vram_mb"] == 4096
    assert a.data.tags["autoresearch.status"] == "keep" and a.data.tags["autoresearch.expectation"] == "none"
    assert a.data.tags["autoresearch.nodeid"] == "experiments/a_lr.toml::a_lr"
    assert a.data.tags["autoresearch.hypothesis"] == "testing a_lr"
    assert a.data.tags["autoresearch.reason"].startswith("keep: ")
    assert a.data.tags["autoresearch.commit"] == git(repo, "rev-parse", "refs/autoresearch/t1/001-a_lr")
    assert a.info.status == "FINISHED" and by_name["002-b_crash"].info.status == "FAILED"
    loss = client.get_metric_history(a.info.run_id, "loss")
    assert [(m.step, m.value) for m in loss] == [(100, 2.5)]  # the progress line: 100% of the budget, loss 2.5
    artifacts = {f.path for f in client.list_artifacts(a.info.run_id)} | {
        f.path for f in client.list_artifacts(a.info.run_id, "logs")}
    assert "experiment.diff" in artifacts and "logs/001-a_lr.log" in artifacts
    diff = Path(mlflow.artifacts.download_artifacts(run_id=a.info.run_id, artifact_path="experiment.diff",
                                                    tracking_uri=uri, dst_path=str(tmp_path / "dl"))).read_text()
    assert "-LR = 0.01" in diff and "+LR = 0.02" in diff
    assert not (repo / "mlruns").exists() and (repo / ".autoresearch" / "mlartifacts").is_dir()  # nothing untracked


def test_a_killed_session_resumes_the_same_run_and_leaves_nothing_running(repo, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with_uri(repo, uri)
    simple(repo, "a_slow", "SLEEP = 30.0")
    with spawn(repo, "run", "--tag", "t1") as proc:
        log = repo / ".autoresearch/runs/t1/logs/001-a_slow.log"
        client = MlflowClient(tracking_uri=uri)

        def a_slow_running() -> bool:  # its log started, and its MLflow run with it (not a moment later)
            try:
                return log.exists() and [c.info.status for c in runs_of(client)[1]] == ["FINISHED", "RUNNING"]
            except Exception:  # the store not made yet, or in the middle of a write
                return False

        deadline = time.monotonic() + 300  # a generous bound: a loaded machine is slow, not wrong
        while not a_slow_running() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert log.exists()
        os.killpg(proc.pid, signal.SIGKILL)  # as a CI cancel: the runner and its workload at once
        proc.wait(timeout=10)
    stop_everything_under(repo)
    parents, children = runs_of(client)
    assert [c.info.status for c in children] == ["FINISHED", "RUNNING"]  # the kill left one running
    simple(repo, "a_slow", "SLEEP = 0.1")  # edited while stopped: it runs as written now
    r = run_subprocess(repo, "run", "--resume", "--tag", "t1")
    assert r.returncode == 0, r.stderr
    parents2, children2 = runs_of(client)
    assert [p.info.run_id for p in parents2] == [parents[0].info.run_id] and parents2[0].info.status == "FINISHED"
    assert not [c for c in children2 if c.info.status == "RUNNING"]
    assert sorted(c.info.status for c in children2) == ["FINISHED", "FINISHED", "KILLED"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_against_a_real_mlflow_server(repo, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600  # its start-up (imports, a database, a worker) on a loaded machine
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        with_uri(repo, uri)
        simple(repo, "a_lr", "LR = 0.02")
        r = run_subprocess(repo, "run", "--tag", "t1")
        assert r.returncode == 0, r.stderr
        parents, children = runs_of(MlflowClient(tracking_uri=uri))
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert sorted(c.info.run_name for c in children) == ["000-baseline", "001-a_lr"]
        a = next(c for c in children if c.info.run_name == "001-a_lr")
        assert a.data.params["LR"] == "0.02" and a.data.params["DEPTH"] == "4" and a.data.metrics["val_bpb"] == pytest.approx(1.12)
        assert "experiment.diff" in {f.path for f in MlflowClient(tracking_uri=uri).list_artifacts(a.info.run_id)}
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(timeout=10)


def test_mlflow_is_not_imported_unless_asked(repo):
    code = ("import sys; from autoresearch.cli import main; main(['--help']); "
            "print('MLFLOW' if 'mlflow' in sys.modules else 'NONE')")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True).stdout
    assert out.strip().endswith("NONE")


def test_dash_p_mlflow_logs_to_a_store_in_the_state_folder(repo, cli):
    simple(repo, "a_lr", "LR = 0.02")
    assert cli("run", "--tag", "t1", "--repeats", "1", "-p", "mlflow").rc == 0
    db = repo / ".autoresearch" / "mlflow.db"
    parents, children = runs_of(MlflowClient(tracking_uri=f"sqlite:///{db}"))
    assert [p.info.run_name for p in parents] == ["t1"] and len(children) == 2


def test_an_mlflow_failure_mid_run_is_a_warning_and_the_run_goes_on(repo, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with_uri(repo, uri)
    (repo / "conftest.py").write_text(  # the store fails when an experiment is logged, as a server going down
        "from autoresearch import hookimpl\n\n"
        "@hookimpl(tryfirst=True)\ndef autoresearch_experiment_logreport(report):\n"
        "    from mlflow.tracking import MlflowClient\n"
        "    def down(*a, **k):\n        raise ConnectionError('server went away')\n"
        "    MlflowClient.log_batch = down\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a flaky store")
    simple(repo, "a_lr", "LR = 0.02")
    r = run_subprocess(repo, "run", "--tag", "t1")
    assert r.returncode == 0, r.stderr
    assert "warning: mlflow: logging baseline failed (ConnectionError: server went away)" in r.stderr
    assert "Traceback" not in r.stderr
    assert (repo / "results.tsv").read_text().count("\n") == 3  # header, baseline, a_lr: recorded as ever


@pytest.mark.parametrize("uri, says", [
    ("sqlite:///.git/x.db", "inside .git"),
    ("http://127.0.0.1:1", "check the URI, or that the server is up"),
    ("bogus://x", "check the URI"),
])
def test_a_store_that_cannot_be_used_is_one_line_before_anything_is_written(repo, cli, uri, says):
    with_uri(repo, uri)
    simple(repo, "a_lr", "LR = 0.02")
    started = time.monotonic()
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and says in r.err and "Traceback" not in r.err, r
    assert time.monotonic() - started < 120  # bounded retries, not minutes of backoff
    assert not (repo / ".autoresearch").exists() and "autoresearch/" not in git(repo, "for-each-ref")
    assert not list((repo / ".git").glob("*.db"))


def test_collect_only_creates_no_store(repo, cli, tmp_path):
    with_uri(repo, f"sqlite:///{tmp_path / 'never.db'}")
    simple(repo, "a_lr", "LR = 0.02")
    assert cli("run", "--collect-only").rc == 0
    assert not (tmp_path / "never.db").exists()
