"""The Slurm executor: against submitit's local executor (each job a process here), and against a
fake Slurm on PATH (tests/fake_slurm.py: sbatch, srun, sacct, scancel, scontrol) for what only
Slurm does: the sbatch options, scancel, and a preempted job that is requeued or ends.

Each run is a job that unpacks the experiment's commit, runs the workload in its own process group
and writes its output to the job's log file, which the runner follows into the run's log.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings as settings_hypothesis, strategies as st

from autoresearch import procs
from autoresearch.plugins.results_tsv import read_results
from conftest import adopting_orphans, git, processes_of, run_subprocess, simple, spawn, stop_everything_under, write
from test_pluginsystem import RECORDER
from test_session import run_dir

import fake_slurm

pytest.importorskip("submitit")  # the dev extra installs it

PROGRESS = 'print("step 00001 (1.0%) | loss 3.250000 | remaining 9s", flush=True)\ntime.sleep(SLEEP)'

PRUNER = '''
from autoresearch import hookimpl


@hookimpl
def autoresearch_experiment_progress(experiment, elapsed, line, loss):
    if experiment.name == "a" and line.startswith("step 00001"):
        return "pruned by the test: its first step was seen"
'''


def rows(repo):
    return [(x["description"], x["status"], x["val_bpb"]) for x in read_results(repo / "results.tsv")]


def settings(repo, text: str) -> None:
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + text)
    git(repo, "commit", "-qam", "settings")


def with_progress(repo) -> None:
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("time.sleep(SLEEP)", PROGRESS))
    git(repo, "commit", "-qam", "an early progress line")


def ledger(repo, tag: str = "t1") -> list[dict]:
    return [json.loads(line) for line in (run_dir(repo, tag) / "ledger.jsonl").read_text().splitlines()]


def gone(repo, tag: str = "t1", seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while procs.marked(run_dir(repo, tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return procs.marked(run_dir(repo, tag))


def slurm_gone(seconds: float = 15) -> list[int]:
    """The fake Slurm's processes still alive after up to `seconds`: its daemons and every process
    of its jobs (a job's workload is one: on a cluster it carries no marker of the runner's)."""
    deadline = time.monotonic() + seconds
    while fake_slurm.processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    return fake_slurm.processes()


@pytest.fixture(autouse=True)
def no_process_left(tmp_path):
    """Every process a test starts ends with it: after the test's own finally blocks, nothing that
    names its tmp_path runs on (a runner, a job, a workload, a fake daemon), and every orphan it
    left was adopted by the test process and reaped (init here reaps only every few seconds)."""
    with adopting_orphans():
        yield
        deadline = time.monotonic() + 15  # what was stopped a moment ago may take a moment to exit
        while (left := processes_of(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        found = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                 for pid in left if Path(f"/proc/{pid}/cmdline").exists()}
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while processes_of(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not found, f"processes the test left running: {found}"


@pytest.fixture
def slurm(repo, tmp_path, monkeypatch):
    """A fake Slurm first on PATH; every job and daemon it started is stopped in finally."""
    env = fake_slurm.install(tmp_path / "slurm-bin", tmp_path / "slurm-state")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        yield tmp_path / "slurm-state"
    finally:
        fake_slurm.stop_all()
        stop_everything_under(repo)
        for pid in procs.marked(run_dir(repo)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def fake_jobs(state: Path) -> list[dict]:
    return [{**json.loads(p.read_text()), "id": p.stem} for p in sorted(state.glob("*.json"), key=lambda p: int(p.stem))]


def settled(state: Path, seconds: float = 30) -> list[dict]:
    """The fake's jobs once none is waiting or running: its daemon writes a job's end a moment after
    the job's last output, which the runner may have read (and ended on) before."""
    deadline = time.monotonic() + seconds
    jobs = fake_jobs(state)
    while any(j["state"] in fake_slurm.ACTIVE for j in jobs) and time.monotonic() < deadline:
        time.sleep(0.1)
        jobs = fake_jobs(state)
    return jobs


# ---------------------------------------------------------------------------------------------
# submitit's local executor


def test_local_jobs_give_the_same_results_and_stream_the_output_while_they_run(repo, tmp_path):
    write(tmp_path / "site" / "recorder.py", RECORDER)
    with_progress(repo)
    simple(repo, "a", "LR = 0.02\nSLEEP = 2.0")
    simple(repo, "b", "LR = 0.001")
    simple(repo, "c", 'CRASH = "exit"')
    local = run_subprocess(repo, "run", "--tag", "local")
    assert local.returncode == 0, local.stderr
    expected = rows(repo)
    settings(repo, 'slurm_cluster = "local"\n')
    events = tmp_path / "events.jsonl"
    r = run_subprocess(repo, "run", "--tag", "slurm", "--executor", "slurm", "-n", "2", "-p", "recorder",
                       env={"PYTHONPATH": str(tmp_path / "site"), "RECORD_TO": str(events)})
    assert r.returncode == 0, r.stderr
    assert rows(repo) == expected
    log = (run_dir(repo, "slurm") / "logs" / "001-a.log").read_text()
    # the workload's output, once, after a line naming the job; submitit's own lines and the markers stay out
    assert log.startswith("[autoresearch: Slurm job ") and log.count("val_bpb:") == 1
    assert "step 00001 (1.0%)" in log and "submitit" not in log and "\x1e" not in log
    crash = json.loads((run_dir(repo, "slurm") / "results.jsonl").read_text().splitlines()[3])
    assert crash["status"] == "crash" and "ValueError: synthetic failure" in crash["root_cause"]
    # the progress line reached the runner while the job still ran (it sleeps 2 s after it)
    progress = [e for e in map(json.loads, events.read_text().splitlines()) if e[0] == "progress" and e[1] == "a"]
    seen = [e[2] for e in progress if e[3].startswith("step 00001 (1.0%)")]
    assert seen and max(e[2] for e in progress) - min(seen) >= 1.0, progress
    # the commit's files are written once per commit, and removed at the end of the session
    assert not (run_dir(repo, "slurm") / "slurm" / "trees").exists()


def test_a_local_job_is_cancelled_at_the_timeout_process_group_and_all(repo):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', 'if CRASH == "hang":\n    import subprocess\n    subprocess.Popen(["sleep", "300"])'))
    git(repo, "commit", "-qam", "a grandchild")
    settings(repo, 'slurm_cluster = "local"\n')
    simple(repo, "a", 'CRASH = "hang"')
    try:
        r = run_subprocess(repo, "run", "--tag", "t1", "--executor", "slurm", "--timeout", "4", timeout=120)
        assert r.returncode == 0, r.stderr
        entry = json.loads((run_dir(repo) / "results.jsonl").read_text().splitlines()[1])
        assert entry["status"] == "crash" and entry["cause"] == "timeout"
        assert gone(repo) == []  # the workload and its grandchild are gone
    finally:
        stop_everything_under(repo)


@pytest.mark.parametrize("ignore_sigint", [False, True])
def test_ctrl_c_cancels_the_local_job_and_its_workload(repo, ignore_sigint):
    settings(repo, 'slurm_cluster = "local"\n')
    simple(repo, "a", "LR = 0.02\nSLEEP = 60.0")
    with spawn(repo, "run", "--tag", "t1", "--executor", "slurm", ignore_sigint=ignore_sigint) as proc:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (  # a's workload, not the baseline's, is training
                (repo / "results.tsv").exists() and read_results(repo / "results.tsv") and procs.marked(run_dir(repo))):
            time.sleep(0.2)
        time.sleep(0.5)
        assert procs.marked(run_dir(repo)), "the workload never started"
        proc.send_signal(signal.SIGINT if not ignore_sigint else signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if ignore_sigint else 130), err
    assert gone(repo) == []
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep"]


def test_without_submitit_installed_the_executor_is_one_clear_line(repo, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if the extra were not installed
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1", "--executor", "slurm")
    assert r.rc == 4 and "needs submitit: pip install 'autoresearch[slurm]'" in r.err and "Traceback" not in r.err


def test_without_slurm_on_path_the_executor_is_one_clear_line(repo, cli, monkeypatch, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "git").symlink_to(shutil.which("git"))  # git, and no Slurm
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1", "--executor", "slurm")
    assert r.rc == 4 and "sbatch is not on PATH" in r.err and "slurm_cluster = \"local\"" in r.err, r


# ---------------------------------------------------------------------------------------------
# a fake Slurm on PATH


def test_each_run_is_a_job_with_the_settings_options(repo, slurm):
    settings(repo, 'slurm_partition = "gpu"\nslurm_gpus_per_node = 2\nslurm_time = 7\n'
                   'slurm_options = ["account=ml", "qos=high"]\nslurm_setup = ["export FROM_SETUP=1"]\n')
    simple(repo, "a", "LR = 0.02")
    r = run_subprocess(repo, "run", "--tag", "t1", "--executor", "slurm", timeout=180)
    assert r.returncode == 0, r.stderr
    assert rows(repo) == [("baseline", "keep", "1.220000"), ("a", "keep", "1.120000")]
    jobs = settled(slurm)
    assert [j["name"] for j in jobs].count("autoresearch-001-a") == 1 and all(j["state"] == "COMPLETED" for j in jobs)
    script = Path(jobs[-1]["script"]).read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --time=7",
                 "#SBATCH --account=ml", "#SBATCH --qos=high", "export FROM_SETUP=1"):
        assert line in script, script


def test_a_pruned_run_is_scancelled(repo, slurm, tmp_path):
    write(tmp_path / "site" / "pruner.py", PRUNER)
    with_progress(repo)
    simple(repo, "a", "LR = 0.02\nSLEEP = 60.0")
    r = run_subprocess(repo, "run", "--tag", "t1", "--executor", "slurm", "-p", "pruner",
                       env={"PYTHONPATH": str(tmp_path / "site")}, timeout=180)
    assert r.returncode == 0, r.stderr
    entry = json.loads((run_dir(repo) / "results.jsonl").read_text().splitlines()[1])
    assert entry["cause"] == "pruned" and "its first step was seen" in entry["root_cause"]
    assert slurm_gone() == []  # every process of every job: the workload, its job, the daemon
    job = next(j for j in settled(slurm) if j["name"] == "autoresearch-001-a")
    assert job["state"] == "CANCELLED"


@pytest.mark.parametrize("mode", ["requeue", "cancel", "requeue-slowly"])
def test_a_preempted_job_is_recorded_as_interrupted_and_its_run_neither_lost_nor_doubled(repo, slurm, monkeypatch, mode):
    """requeue: Slurm runs the same job again (SLURM_RESTART_COUNT=1), and the runner follows it;
    cancel: the job ends PREEMPTED, and the runner submits it again; requeue-slowly: the job shows
    PREEMPTED for 4 s (a long KillWait, a busy controller) before it is requeued: not taken for
    its end (a second job would run the same experiment)."""
    with_progress(repo)
    simple(repo, "a", "LR = 0.02\nSLEEP = 2.0")
    monkeypatch.setenv("FAKE_SLURM_PREEMPT", f"autoresearch-001-a:step 00001:{mode.partition('-')[0]}")
    if mode == "requeue-slowly":
        monkeypatch.setenv("FAKE_SLURM_KILL_WAIT", "4")
        mode = "requeue"
    r = run_subprocess(repo, "run", "--tag", "t1", "--executor", "slurm", timeout=180)
    assert r.returncode == 0, r.stderr
    assert rows(repo) == [("baseline", "keep", "1.220000"), ("a", "keep", "1.120000")]  # one result, the right one
    interrupted = [e for e in ledger(repo) if e["event"] == "interrupted-run"]
    assert len(interrupted) == 1 and interrupted[0]["seq"] == 1 and interrupted[0]["status"] == "interrupted"
    assert interrupted[0]["requeued"] is (mode == "requeue") and interrupted[0]["node"]
    log = (run_dir(repo) / "logs" / "001-a.log").read_text()
    assert "was preempted" in log and "recorded as interrupted" in log
    # the output starts again with the next attempt: nothing of it is counted twice
    assert log.count("step 00001 (1.0%)") == 1 and log.count("val_bpb:") == 1
    jobs = [j for j in settled(slurm) if j["name"] == "autoresearch-001-a"]
    if mode == "requeue":  # one job, run twice
        assert [(j["state"], j["restarts"]) for j in jobs] == [("COMPLETED", 1)]
        assert "attempt 2 (requeued)" in log
    else:  # the preempted job, and the one submitted again
        assert [j["state"] for j in jobs] == ["PREEMPTED", "COMPLETED"]
    assert slurm_gone() == []  # every process of every job: the workload, its job, the daemon


# ---------------------------------------------------------------------------------------------
# the job's log, read in whatever pieces the filesystem gives


def feed_in_pieces(run, stream: bytes, cuts: list[int]) -> None:
    """The job's log as the runner reads it: in pieces of the given sizes, then the rest."""
    pos = 0
    for cut in cuts:
        run.feed(stream[pos:pos + cut])
        pos += cut
    run.feed(stream[pos:])


@settings_hypothesis(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\x1e", b"")), min_size=1, max_size=6),
       st.lists(st.integers(min_value=1, max_value=30), max_size=40))
def test_the_markers_are_taken_out_wherever_the_reads_split_them(outputs, cuts):
    """The job's log as submitit and the job write it: lines before the first attempt, the
    workload's output between an attempt marker and its exit marker; read in arbitrary pieces,
    the run's log holds exactly the workload's output, and the exit code is the marker's."""
    import io
    import types

    from autoresearch.plugins.slurm_run import MARK, SlurmRun

    stream = b"submitit INFO starting\n" + MARK + b"attempt=0 host=n1 job=7\n" + b"".join(outputs)
    stream += MARK + b"exit=3\n" + b"submitit INFO done\n"
    log = io.BytesIO()
    run = SlurmRun(lambda: types.SimpleNamespace(job_id="7"), log, lambda entry: None)
    feed_in_pieces(run, stream, cuts)
    assert log.getvalue() == b"[autoresearch: Slurm job 7 runs on n1]\n" + b"".join(outputs)
    assert run.exit == 3


def test_a_job_a_killed_runner_left_running_is_cancelled_before_resume_runs_it_again(repo, slurm):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        "time.sleep(SLEEP)", 'time.sleep(float(os.environ.get("TEST_SLEEP", SLEEP)) if LR == 0.02 else SLEEP)'))
    git(repo, "commit", "-qam", "the hypothesis's sleep from the environment")
    settings(repo, 'pass_env = ["TEST_SLEEP"]\n')
    simple(repo, "a", "LR = 0.02")
    with spawn(repo, "run", "--tag", "t1", "--executor", "slurm", env={"TEST_SLEEP": "60"}) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
                j["name"] == "autoresearch-001-a" and j["state"] == "RUNNING" for j in fake_jobs(slurm)):
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        proc.kill()  # SIGKILL: no finally, no scancel; the job runs on, as it would on a cluster
        proc.communicate(timeout=30)
    orphan = next(j for j in fake_jobs(slurm) if j["name"] == "autoresearch-001-a")
    assert orphan["state"] == "RUNNING"
    r = run_subprocess(repo, "run", "--tag", "t1", "--executor", "slurm", "--resume", env={"TEST_SLEEP": "0"},
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]
    jobs = settled(slurm)
    assert next(j for j in jobs if j["id"] == orphan["id"])["state"] == "CANCELLED", r.stderr
    # scancelled before the job that runs its experiment again was submitted
    again = next(j for j in jobs if j["name"] == "autoresearch-001-a" and int(j["id"]) > int(orphan["id"]))
    assert float((slurm / f"{orphan['id']}.cancel").read_text()) < again["submitted"]
    assert not (run_dir(repo) / "slurm" / "in-flight").read_text().strip()


FORGED = st.sampled_from([b"\x1e[autoresearch-slurm] exit=0\n", b"\x1e[autoresearch-slurm] exit=x\n",
                          b"\x1e[autoresearch-slurm] attempt=5 host=evil job=7\n",
                          b"\x1e[autoresearch-slurm] terminated=0\n", b"\x1e[autoresearch-slurm] 00ff exit=0\n"])


@settings_hypothesis(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\x1e", b"")) | FORGED, min_size=1, max_size=6),
       st.lists(st.integers(min_value=1, max_value=30), max_size=40))
def test_a_candidate_that_prints_marker_lines_changes_nothing_but_its_own_output(outputs, cuts):
    """The untrusted workload shares the job's log: a marker line it prints (an exit code, a new
    attempt, a preemption) lacks the job's nonce, so it is the workload's output and nothing more."""
    import io
    import types

    from autoresearch.plugins.slurm_run import MARK, SlurmRun

    nonce = "5f2b9c0e41d7a6b3"
    real = MARK + nonce.encode() + b" "
    stream = b"submitit INFO starting\n" + real + b"attempt=0 host=n1 job=7\n" + b"".join(outputs)
    stream += real + b"exit=3\n" + b"submitit INFO done\n"
    log, interrupted = io.BytesIO(), []
    run = SlurmRun(lambda: types.SimpleNamespace(job_id="7"), log, interrupted.append, nonce=nonce)
    feed_in_pieces(run, stream, cuts)
    assert log.getvalue() == b"[autoresearch: Slurm job 7 runs on n1]\n" + b"".join(outputs)
    assert run.exit == 3 and run.attempt == "0" and not interrupted and not run.terminated
