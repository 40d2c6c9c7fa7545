"""Live: ``status`` shows what each running experiment is doing (from its log), ``status --follow``,
``run --watch``'s idle lines; and re-running: ``--rerun``, ``-k``'s deselected count, ``--resume
--collect-only`` marking what is done. Real runs of a workload that prints progress lines."""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

from conftest import git, run_subprocess, simple, spawn

from autoresearch.reports import ExitCode

PROGRESS = '''\
STEPS = 10
PAUSE = 0.0
LR = 0.01
CRASH = ""
import sys, time
if CRASH:
    print("Traceback (most recent call last):")
    print("ValueError: synthetic failure")
    sys.exit(3)
for i in range(1, STEPS + 1):
    time.sleep(PAUSE)
    print(f"step {i:05d} ({100 * i / STEPS:.1f}%) | loss {3.0 - 0.1 * i:.4f}", flush=True)
print("---")
print(f"val_bpb: {1.0 + abs(LR - 0.03):.6f}")
'''


def progress_workload(repo, pause: float = 0.0) -> None:
    (repo / "train.py").write_text(PROGRESS.replace("PAUSE = 0.0", f"PAUSE = {pause}"))
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "repeats = 1\nwatch_interval = 0.2\n")
    git(repo, "commit", "-qam", "a workload that prints its progress")


def held_at(repo, step: int, gate) -> dict[str, str]:
    """The workload waits after printing `step` until the file `gate` exists (up to 5 minutes):
    the test samples its progress while it surely runs, however slow a loaded machine is, then
    creates the file. Returns the runner's environment: the sandbox shows a run its data folders
    (XDG_CACHE_HOME here: the gate's folder), read-only."""
    gate.parent.mkdir(parents=True, exist_ok=True)
    line = '    print(f"step {i:05d} ({100 * i / STEPS:.1f}%) | loss {3.0 - 0.1 * i:.4f}", flush=True)\n'
    held = (f"    _deadline = time.time() + 300\n"
            f"    while i == {step} and time.time() < _deadline and not os.path.exists({str(gate)!r}):\n"
            f"        time.sleep(0.05)\n")
    text = (repo / "train.py").read_text()
    assert line in text
    (repo / "train.py").write_text(text.replace(line, line + held).replace("import sys, time", "import os, sys, time"))
    git(repo, "commit", "-qam", f"the workload waits at step {step} for the test")
    return {"XDG_CACHE_HOME": str(gate.parent)}


def wait_for(predicate, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_shows_the_running_experiments_progress_from_its_log(repo, cli):
    progress_workload(repo, pause=0.5)  # the baseline itself takes 5 s: seen running, with nothing finished
    gate = repo.parent / "shown" / "go-on"
    env = held_at(repo, 3, gate)  # and it waits at step 3 until the test has seen it
    simple(repo, "a_lr", "LR = 0.02")
    with spawn(repo, "run", "--tag", "t1", env=env) as proc:
        def seen():
            r = cli("status", "--json")
            if r.rc != 0:
                return None
            data = json.loads(r.out)
            running = data["running"]
            return data if running and running[0]["step"] and running[0]["step"] >= 2 else None

        data = wait_for(seen, timeout=300, what="the baseline's progress")
        now = data["running"][0]
        assert now["nodeid"] == "baseline" and now["log"].endswith("000-baseline.log")
        assert 0.2 <= now["share"] <= 1.0 and now["share"] == now["step"] / 10
        assert now["loss"] == round(3.0 - 0.1 * now["step"], 4) and now["eta_s"] is not None
        text = cli("status").out
        first = text.splitlines()[0]
        assert "0 experiments; runner alive" in first and ", ;" not in first  # was "0 experiments, ;"
        line = next(x for x in text.splitlines() if x.startswith("running: "))
        assert line.startswith("running: #0 baseline for ") and " — step " in line and "%), loss " in line
        assert "to go" in line
        gate.touch()
        proc.communicate(timeout=300)
    assert "running" not in cli("status").out


def test_follow_prints_a_line_per_change_when_piped_and_ends_with_the_run(repo, cli):
    progress_workload(repo, pause=0.3)
    gate = repo.parent / "shown" / "go-on"
    env = held_at(repo, 3, gate)  # the baseline waits at step 3 until the follower has shown a step
    simple(repo, "a_lr", "LR = 0.02")
    out = repo.parent / "follow.out"
    with spawn(repo, "run", "--tag", "t1", env=env) as runner, open(out, "w") as to:
        wait_for(lambda: cli("status", "--json").rc == 0 and json.loads(cli("status", "--json").out)["runner"]["alive"],
                 timeout=300, what="the runner")
        follow = subprocess.Popen([sys.executable, "-m", "autoresearch", "status", "--follow", "--interval", "0.2"],
                                  cwd=repo, stdout=to, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            wait_for(lambda: " — step " in out.read_text(), timeout=300, what="a step in the follower's lines")
            gate.touch()
            _, err = follow.communicate(timeout=300)
        finally:
            if follow.poll() is None:
                os.killpg(follow.pid, signal.SIGKILL)
                follow.communicate()
        runner.communicate(timeout=300)
    assert follow.returncode == 0, err
    lines = out.read_text().splitlines()
    assert lines[-1] == "no runner at work on t1: the run has ended (autoresearch run --resume continues it)"
    assert any(" — step " in x and "loss" in x for x in lines), lines
    assert len(lines) == len(set(lines)) and len(lines) >= 3  # one line per change, not per look
    assert any("1 experiment (1 keep)" in x for x in lines) and "Traceback" not in err


def test_follow_on_a_terminal_redraws_in_place_and_ctrl_c_leaves_cleanly(repo, cli):
    progress_workload(repo, pause=1.0)  # 10 s a run: still running when we stop following
    gate = repo.parent / "shown" / "go-on"
    env = held_at(repo, 3, gate)  # and the baseline waits at step 3 until we have stopped following
    simple(repo, "a_lr", "LR = 0.02")
    with spawn(repo, "run", "--tag", "t1", env=env):
        wait_for(lambda: cli("status", "--json").rc == 0 and json.loads(cli("status", "--json").out)["running"],
                 timeout=300, what="a running experiment")
        master, slave = pty.openpty()
        follow = subprocess.Popen([sys.executable, "-m", "autoresearch", "status", "--follow", "--interval", "0.2"],
                                  cwd=repo, stdout=slave, stderr=subprocess.PIPE, env={**os.environ, "TERM": "xterm"},
                                  start_new_session=True)
        os.close(slave)
        out = b""
        try:
            deadline = time.monotonic() + 300
            while out.count(b"autoresearch status") < 3 and time.monotonic() < deadline:
                if select.select([master], [], [], 0.5)[0]:
                    out += os.read(master, 65536)
            follow.send_signal(signal.SIGINT)
            rc = follow.wait(timeout=120)
            while select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        finally:
            if follow.poll() is None:
                follow.kill()
            os.close(master)
            gate.touch()
    text = out.decode(errors="replace")
    assert text.count("autoresearch status — tag t1") >= 3 and "\x1b[1A" in text  # drawn again, in place
    assert rc == ExitCode.OK and "stopped following (the run goes on)" in text
    assert "Traceback" not in follow.stderr.read().decode()


def test_watch_says_what_it_watches_and_how_long_since_the_last_result(repo, tmp_path):
    progress_workload(repo)
    simple(repo, "a_lr", "LR = 0.02")
    log = tmp_path / "run.log"
    with open(log, "w") as out, spawn(repo, "run", "--tag", "w", "--watch", stdout=out, stderr=subprocess.STDOUT):
        wait_for(lambda: "watching 1 path" in log.read_text(), what="the watching line")
    line = next(x for x in log.read_text().splitlines() if x.startswith("watching"))
    assert line.startswith("watching 1 path (experiments) for new or changed hypothesis files, every 0.2s; "
                           "last result ") and line.endswith("ago (Ctrl-C stops)")
    # on a terminal: the time since the last result, in place
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "autoresearch", "run", "--tag", "w2", "--watch"], cwd=repo,
                            stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm"}, start_new_session=True)
    os.close(slave)
    text = b""
    try:
        deadline = time.monotonic() + 60
        while text.count(b"idle: last result") < 2 and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                text += os.read(master, 65536)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
        os.close(master)
    assert text.count(b"\r\x1b[Kidle: last result ") >= 2, text[-500:]


def test_rerun_crashed_runs_them_again_and_collect_only_marks_what_is_done(repo, cli):
    progress_workload(repo)
    simple(repo, "a_lr", "LR = 0.02")
    simple(repo, "b_crash", 'CRASH = "exit"')
    simple(repo, "c_lr", "LR = 0.03")
    r = cli("run", "--tag", "t1", "-k", "lr or crash")
    assert r.rc == 0 and "collected 3 hypotheses" in r.out
    r = cli("run", "--tag", "t2", "-k", "crash")
    assert "collected 3 hypotheses / 2 deselected / 1 selected" in r.out, r.out
    co = cli("run", "--resume", "--tag", "t1", "--collect-only")
    assert "experiments/a_lr.toml::a_lr  [done #1: keep]" in co.out
    assert "experiments/b_crash.toml::b_crash  [done #2: crash]" in co.out
    assert "3 hypotheses collected, 3 done, 0 to run;" in co.out
    co = cli("run", "--resume", "--tag", "t1", "--collect-only", "--rerun", "crashed", "-k", "crash or a_lr")
    assert "experiments/b_crash.toml::b_crash  [runs again: crash #2]" in co.out
    assert "2 hypotheses collected (1 deselected by -k), 1 done, 1 to run (1 again: --rerun);" in co.out
    assert cli("run", "--resume", "--tag", "t1").rc == 0  # nothing runs again without --rerun
    assert [e["nodeid"] for e in json.loads(cli("status", "--tag", "t1", "--json").out)["experiments"]][-1] \
        == "experiments/c_lr.toml::c_lr"
    r = cli("run", "--resume", "--tag", "t1", "--rerun", "crashed")
    assert r.rc == 0, r
    runs = [(e["seq"], e["nodeid"], e["status"]) for e in json.loads(cli("status", "--tag", "t1", "--json").out)["experiments"]]
    assert runs[-1] == (4, "experiments/b_crash.toml::b_crash", "crash") and len(runs) == 5
    bad = cli("run", "--rerun", "crashed", "--tag", "t3")
    assert bad.rc == ExitCode.USAGE_ERROR and "--rerun crashed: it re-runs experiments of a run being continued " \
        "(add --resume)" in bad.err
    bad = cli("run", "--resume", "--rerun", "failed")
    assert bad.rc == ExitCode.USAGE_ERROR and "--rerun failed: 'failed' is not one of crashed, inconclusive, " \
        "interrupted" in bad.err


def test_rerun_inconclusive_names_the_expectations_within_the_noise():
    from autoresearch.reports import Report
    from autoresearch.session import reruns

    def report(**kw):
        return Report(seq=1, tag="t", nodeid="n", name="n", key="k", description="d", hypothesis="h",
                      reason="", metric="val_bpb", direction="minimize", **kw)

    assert reruns(report(status="discard", expectation="inconclusive"), ("inconclusive",))
    assert not reruns(report(status="discard", expectation="refuted"), ("inconclusive", "crashed"))
    assert reruns(report(status="crash"), ("crashed",)) and not reruns(report(status="crash"), ("inconclusive",))


def test_status_follow_of_a_run_that_ended_says_so_at_once(repo, cli):
    progress_workload(repo)
    simple(repo, "a_lr", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    r = run_subprocess(repo, "status", "--follow")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("no runner at work on t1")
    bad = cli("status", "--follow", "--interval", "0")
    assert bad.rc == ExitCode.USAGE_ERROR and "--interval 0: give seconds between looks, more than 0" in bad.err


def test_rerun_inconclusive_runs_again_an_expectation_the_noise_could_not_decide(repo, cli):
    train = repo / "train.py"
    train.write_text(train.read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.01"))
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "repeats = 3\nmax_repeats = 3\n")
    git(repo, "commit", "-qam", "a noisy workload")
    simple(repo, "a_tiny", "LR = 0.0101", 'val_bpb = "< baseline"')  # 0.001 better, the noise 0.01
    simple(repo, "b_big", "LR = 0.02", 'val_bpb = "< baseline"')
    assert cli("run", "--tag", "t1").rc == 0
    first = json.loads(cli("status", "--json").out)["experiments"]
    assert [(e["nodeid"].split("::")[1], e["expectation"]) for e in first[1:]] == [
        ("a_tiny", "inconclusive"), ("b_big", "confirmed")]
    co = cli("run", "--resume", "--collect-only", "--rerun", "inconclusive")
    assert "a_tiny  [runs again: " in co.out and "b_big  [done #" in co.out
    assert cli("run", "--resume", "--rerun", "inconclusive").rc == 0
    again = json.loads(cli("status", "--json").out)["experiments"]
    assert len(again) == len(first) + 1 and again[-1]["nodeid"] == "experiments/a_tiny.toml::a_tiny"


def test_live_reads_progress_as_the_prune_plugin_does_even_without_it():
    from autoresearch.live import PROGRESS
    from autoresearch.plugins.prune import DEFAULT_PATTERN

    assert PROGRESS == DEFAULT_PATTERN
