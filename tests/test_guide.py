"""The agent guide (program.md) that init writes works: a scripted agent that knows only the
guide's commands (its fenced blocks) starts the runner in the background, checks it is alive,
writes a hypothesis from the guide's template, and reads its verdict from ``status --json``."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FAKE_TRAIN, git, stop_everything_under


def blocks(guide: str, lang: str) -> list[str]:
    return re.findall(rf"^ *```{lang}\n(.*?)^ *```", guide, re.S | re.M)


def commands(guide: str) -> dict[str, str]:
    """The guide's bash blocks, by the comment on their first line (``# start`` -> its commands)."""
    out = {}
    for block in blocks(guide, "bash"):
        first, _, rest = block.partition("\n")
        assert first.startswith("# "), block
        out[first[2:].strip()] = rest
    return out


def shell(root: Path, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def test_a_scripted_agent_drives_the_loop_from_the_guides_commands_alone(repo, cli):
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "watch_interval = 0.2\n")
    assert cli("init").rc == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "autoresearch init")
    guide = (repo / "program.md").read_text()
    assert "**Never stop, never ask.**" in guide and "the metric **`val_bpb`** gets better: **lower is better**" in guide
    steps = commands(guide)
    assert steps["start"].strip() == "nohup autoresearch run --watch > run.log 2>&1 &"
    assert steps["resume"].strip() == "nohup autoresearch run --watch --resume > run.log 2>&1 &"
    assert shell(repo, steps["check"]).returncode == 0  # init's example hypothesis collects
    pid = None
    try:
        assert shell(repo, steps["start"]).returncode == 0  # returns at once: the runner is in the background

        def alive():
            r = shell(repo, steps["alive"])
            if not r.stdout.startswith("{"):  # no run recorded yet: status says so on stderr
                return None
            data, end = json.JSONDecoder().raw_decode(r.stdout)
            return (data, r.stdout[end:]) if data["runner"]["alive"] and "watching 1 path" in r.stdout[end:] else None

        data, tail = wait_for(alive, "the runner alive and waiting")
        pid = data["runner"]["pid"]
        assert "watching 1 path (experiments)" in tail
        # the agent writes a hypothesis from the guide's template: NAME is a constant of train.py
        template = next(b for b in blocks(guide, "toml") if "[set]" in b)
        hypothesis = "\n".join(line.strip() for line in template.splitlines()).replace("NAME = 0.03", "LR = 0.03")
        assert '[expect]\nval_bpb = "< baseline"' in hypothesis
        (repo / "experiments" / "agent_lr.toml").write_text(hypothesis)

        def verdict():
            data, _ = json.JSONDecoder().raw_decode(shell(repo, steps["alive"]).stdout)
            done = [e for e in data["experiments"] if e["nodeid"] == "experiments/agent_lr.toml::agent_lr"]
            return done[0] if done else None

        result = wait_for(verdict, "the agent's hypothesis to be decided")
        assert result["status"] == "keep" and result["expectation"] == "confirmed"
        assert result["value"] < json.loads(cli("status", "--json").out)["baseline"]["value"]
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        stop_everything_under(repo)
    assert "Traceback" not in (repo / "run.log").read_text()


def test_init_turns_python_hypotheses_off_and_fills_in_the_projects_metric(tmp_path, monkeypatch, cli):
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text(FAKE_TRAIN.replace('f"val_bpb:', 'f"val_accuracy:'))
    git(root, "init", "-q", "-b", "main")
    monkeypatch.chdir(root)
    assert cli("init").rc == 0
    assert "\npython_hypotheses = false\n" in (root / "pyproject.toml").read_text()
    guide = (root / "program.md").read_text()
    assert "the metric **`val_accuracy`** gets better: **higher is better** (maximize" in guide
    assert 'val_accuracy = "> baseline"' in guide and "val_loss" not in guide
    assert "One run takes the workload's own budget plus start-up" in guide


def wait_for(predicate, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
