"""``autoresearch ci``: nights of research against a bare "remote" repository (real git, the fake
workload), a fake GitHub API (a local HTTP server), and ``publish --pr`` through it and through a
fake ``gh`` on PATH."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import git, processes_under, run_subprocess, simple, spawn, stop_everything_under


class FakeGitHub:
    """The pulls endpoints of GitHub's REST API, in memory; every request recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, str]] = []
        self.pulls: list[dict[str, Any]] = []
        github = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, code: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def handle_any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                github.requests.append((self.command, self.path, body, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != "Bearer secret-token":
                    return self.answer(401, {"message": "Bad credentials"})
                path = self.path.split("?")[0]
                if self.command == "GET" and path == "/repos/me/proj/pulls":
                    return self.answer(200, [p for p in github.pulls if p["state"] == "open"])
                if self.command == "POST" and path == "/repos/me/proj/pulls":
                    pr = dict(body, number=len(github.pulls) + 1, state="open",
                              html_url=f"https://github.example/me/proj/pull/{len(github.pulls) + 1}")
                    github.pulls.append(pr)
                    return self.answer(201, pr)
                if self.command == "PATCH" and path.startswith("/repos/me/proj/pulls/"):
                    pr = github.pulls[int(path.rsplit("/", 1)[1]) - 1]
                    pr.update(body)
                    return self.answer(200, pr)
                return self.answer(404, {"message": "Not Found"})

            do_GET = do_POST = do_PATCH = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(autouse=True)
def nothing_left_running(tmp_path: Path) -> Iterator[None]:
    """Whatever a night started (a runner, a workload) is stopped when its test ends, however it ends."""
    try:
        yield
    finally:
        stop_everything_under(tmp_path)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def bare_path() -> str:
    """PATH with git and this Python only: no real gh can answer instead of the fake server."""
    dirs = dict.fromkeys(os.path.dirname(p) for p in (shutil.which("git"), sys.executable) if p)
    return os.pathsep.join(dirs)


def clone(remote: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(remote), str(where)], check=True, capture_output=True)
    git(where, "config", "user.email", "ci@example.com")
    git(where, "config", "user.name", "CI")
    return where


def night(tmp: Path, remote: Path, name: str, github: FakeGitHub, *args: str) -> tuple[Path, subprocess.CompletedProcess]:
    """A night in a fresh clone, as a CI runner has it: autoresearch ci --pr."""
    work = clone(remote, tmp / name)
    env = dict(GITHUB_TOKEN="secret-token", GITHUB_API_URL=github.url, GITHUB_REPOSITORY="me/proj",
               GITHUB_SERVER_URL="https://github.example", GITHUB_STEP_SUMMARY=str(tmp / f"{name}-summary.md"),
               PATH=bare_path())
    return work, run_subprocess(work, "ci", "--pr", *args, env=env, timeout=300)


def status_of(where: Path) -> str:
    proc = run_subprocess(where, "status")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def imported_status(remote: Path, export: Path, where: Path) -> str:
    work = clone(remote, where)
    proc = run_subprocess(work, "import", str(export))
    assert proc.returncode == 0, proc.stderr
    return status_of(work)


def test_two_nights_continue_the_research(repo: Path, tmp_path: Path, github: FakeGitHub) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    simple(repo, "lr_up", "LR = 0.03")  # better: kept
    simple(repo, "deeper", "DEPTH = 6")  # worse: discarded
    simple(repo, "gelu", 'ACT = "gelu"')  # no change: discarded
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "three hypotheses")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")

    # night 1: the baseline and three hypotheses; the kept commit pushed, the pull request opened
    one, proc = night(tmp_path, remote, "night1", github)
    assert proc.returncode == 0, proc
    assert "3 hypotheses to run on autoresearch/nightly (a new run: the baseline first)" in proc.stdout
    tip1 = git(remote, "rev-parse", "refs/heads/autoresearch/nightly")
    assert "experiment: lr_up" in git(remote, "log", "-1", "--format=%B", tip1)
    assert git(remote, "rev-parse", f"{tip1}~1") == git(remote, "rev-parse", "main")
    assert [(m, p.split("?")[0]) for m, p, _, _ in github.requests] == [
        ("GET", "/repos/me/proj/pulls"), ("POST", "/repos/me/proj/pulls")]
    pr = github.pulls[0]
    assert (pr["head"], pr["base"]) == ("autoresearch/nightly", "main")
    assert "Tonight: 4 experiments" in pr["body"] and "| 3 | keep | 1.020000 | lr_up |" in pr["body"]
    assert pr["title"].startswith("autoresearch nightly: 1 kept of 3 hypotheses")
    summary = (tmp_path / "night1-summary.md").read_text()
    assert "Tonight: 4 experiments" in summary and "Pull request: https://github.example/me/proj/pull/1" in summary
    record1 = git(remote, "rev-parse", "refs/heads/autoresearch-record/nightly")
    assert f"https://github.example/me/proj/blob/{record1}/progress.png?raw=true" in summary
    assert {"junit.xml", "report.md", "record.tar.gz"} <= {p.name for p in (one / "autoresearch-ci").iterdir()}
    assert "autoresearch-ci" not in git(one, "status", "--porcelain")  # the night's files are git-ignored
    status1 = status_of(one)
    assert "4 experiments, 2 keep, 2 discard" in status1
    assert imported_status(remote, one / "autoresearch-ci" / "record.tar.gz", tmp_path / "check1") == status1

    # a new hypothesis file on main
    simple(repo, "shallower", "DEPTH = 3")  # better than night 1's tip: kept
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one more hypothesis")
    git(repo, "push", "-q", "origin", "main")

    # night 2: only the new one, on top of night 1's tip; the same branch and pull request move on
    two, proc = night(tmp_path, remote, "night2", github)
    assert proc.returncode == 0, proc
    assert "imported run nightly" in proc.stdout
    assert "1 hypothesis to run on autoresearch/nightly (continuing it): experiments/shallower.toml::shallower" \
        in proc.stdout
    tip2 = git(remote, "rev-parse", "refs/heads/autoresearch/nightly")
    assert git(remote, "rev-parse", f"{tip2}~1") == tip1
    assert "experiment: shallower" in git(remote, "log", "-1", "--format=%B", tip2)
    assert git(remote, "rev-parse", "refs/heads/autoresearch-record/nightly~1") == record1
    ledger = [json.loads(line) for line in
              (two / ".autoresearch" / "runs" / "nightly" / "ledger.jsonl").read_text().splitlines()]
    ran = [e["report"]["name"] for e in ledger if e["event"] == "done"]
    assert ran == ["baseline", "deeper", "gelu", "lr_up", "shallower"]  # night 1's four, night 2's one
    assert [e["report"]["baseline_commit"] for e in ledger if e["event"] == "done"][-1] == tip1
    assert len(github.pulls) == 1 and github.requests[-1][0] == "PATCH"
    assert "Tonight: 1 experiment." in github.pulls[0]["body"] and "shallower" in github.pulls[0]["body"]
    status2 = status_of(two)
    assert "5 experiments, 3 keep, 2 discard" in status2
    assert imported_status(remote, two / "autoresearch-ci" / "record.tar.gz", tmp_path / "check2") == status2

    # night 3: nothing new: it says so and runs nothing, pushes nothing
    three, proc = night(tmp_path, remote, "night3", github)
    assert proc.returncode == 0, proc
    assert "nothing new since the last night: the 4 hypotheses collected were all decided in run nightly" \
        in proc.stdout
    assert git(remote, "rev-parse", "refs/heads/autoresearch/nightly") == tip2
    assert not (three / "autoresearch-ci").exists()
    assert "nothing new" in (tmp_path / "night3-summary.md").read_text()


FAKE_GH = """#!/bin/sh
# a fake gh: logs its arguments (and the body file it was given), answers pr list from $FAKE_GH_LIST
echo "$@" >> "$FAKE_GH_LOG"
for a in "$@"; do
  if [ "$prev" = "--body-file" ]; then cat "$a" >> "$FAKE_GH_LOG"; echo >> "$FAKE_GH_LOG"; fi
  prev="$a"
done
case "$1 $2" in
  "pr list") echo "${FAKE_GH_LIST:-[]}" ;;
  "pr create") echo "https://github.example/me/proj/pull/7" ;;
esac
"""


@pytest.fixture
def published(repo: Path, tmp_path: Path, cli) -> Path:
    """A finished run `t` and a bare remote to push it to."""
    simple(repo, "lr_up", "LR = 0.03")
    assert cli("run", "--tag", "t").rc == 0
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    return remote


def test_publish_pr_through_gh(repo: Path, tmp_path: Path, published: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    log = tmp_path / "gh.log"
    env = dict(PATH=f"{bin_dir}{os.pathsep}{bare_path()}", FAKE_GH_LOG=str(log), GITHUB_REPOSITORY="me/proj")
    proc = run_subprocess(repo, "publish", "--pr", env=env)
    assert proc.returncode == 0, proc
    assert "opened the pull request of autoresearch/t into main: https://github.example/me/proj/pull/7" in proc.stdout
    calls = log.read_text()
    assert "pr list --repo me/proj --head autoresearch/t --base main --state open --json number,url --limit 1" in calls
    assert "pr create --repo me/proj --head autoresearch/t --base main --title autoresearch t: 1 kept of 1 " in calls
    assert "| commit | val_bpb | memory_gb | status | description |" in calls and "# autoresearch report — t" in calls
    assert git(published, "rev-parse", "refs/heads/autoresearch/t") == git(repo, "rev-parse", "autoresearch/t")
    log.unlink()
    proc = run_subprocess(repo, "publish", "--pr", "--base", "dev",
                          env=dict(env, FAKE_GH_LIST='[{"number": 7, "url": "https://github.example/me/proj/pull/7"}]'))
    assert proc.returncode == 0, proc
    assert "updated the pull request of autoresearch/t into dev" in proc.stdout
    assert "pr edit 7 --repo me/proj --title" in log.read_text() and "pr create" not in log.read_text()


def test_publish_pr_refused_is_one_line(repo: Path, published: Path, github: FakeGitHub) -> None:
    env = dict(PATH=bare_path(), GITHUB_API_URL=github.url, GITHUB_REPOSITORY="me/proj", GITHUB_TOKEN="wrong")
    proc = run_subprocess(repo, "publish", "--pr", env=env)
    assert proc.returncode == 4
    assert proc.stderr.strip() == ("autoresearch: error: GitHub API GET /repos/me/proj/pulls: 401 Bad credentials "
                                   "(the token needs pull-requests: write)")
    proc = run_subprocess(repo, "publish", "--pr", env=dict(env, GITHUB_TOKEN="", GH_TOKEN=""))
    assert proc.returncode == 4 and proc.stderr.count("\n") == 1
    assert "--pr needs the gh CLI on PATH or a token in $GITHUB_TOKEN" in proc.stderr
    proc = run_subprocess(repo, "publish", "--pr", env=dict(env, GITHUB_REPOSITORY=""))
    assert proc.returncode == 4 and "which GitHub repository? remote 'origin' is not on github.com" in proc.stderr


def test_ci_refuses_what_it_cannot_continue(repo: Path, tmp_path: Path, cli) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main:refs/heads/autoresearch/nightly")  # a branch without its record
    simple(repo, "lr_up", "LR = 0.03")
    r = cli("ci")
    assert r.rc == 4 and r.err.count("\n") == 1, r
    assert "origin has branch autoresearch/nightly but no record of it (autoresearch-record/nightly)" in r.err
    r = cli("ci", "--", "--tag", "x")
    assert r.rc == 4 and "autoresearch ci -- --tag: ci sets it itself" in r.err
    r = cli("ci", "--branch", "main")
    assert r.rc == 4 and "--branch 'main': the research branch is a run's branch, autoresearch/TAG" in r.err
    r = cli("ci", "--pr", "--no-push")
    assert r.rc == 4 and "ci --pr --no-push: a pull request needs the branch pushed" in r.err
    r = cli("ci", "--remote", "nowhere")
    assert r.rc == 4 and "no git remote named 'nowhere'" in r.err
    assert not (repo / ".autoresearch" / "runs").exists()  # nothing written by any of them


def test_ci_from_an_export_without_a_remote_push(repo: Path, tmp_path: Path, cli) -> None:
    """--from-export (last night's artefact) and --no-push: the same continuation, offline."""
    simple(repo, "lr_up", "LR = 0.03")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    first = clone(repo, tmp_path / "first")
    proc = run_subprocess(first, "ci", "--no-push", "--remote", "nowhere", env=dict(PATH=bare_path()))
    assert proc.returncode == 4 and "no git remote named 'nowhere'" in proc.stderr  # the remote is asked first
    git(first, "remote", "add", "nowhere", str(tmp_path / "empty.git"))
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "empty.git")], check=True)
    proc = run_subprocess(first, "ci", "--no-push", "--remote", "nowhere", env=dict(PATH=bare_path()))
    assert proc.returncode == 0, proc
    assert git(tmp_path / "empty.git", "for-each-ref") == ""  # --no-push: nothing pushed
    simple(repo, "shallower", "DEPTH = 3")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two")
    second = clone(repo, tmp_path / "second")
    proc = run_subprocess(second, "ci", "--no-push", "--from-export", str(first / "autoresearch-ci" / "record.tar.gz"),
                          env=dict(PATH=bare_path()))
    assert proc.returncode == 0, proc
    assert "1 hypothesis to run on autoresearch/nightly (continuing it): experiments/shallower.toml::shallower" \
        in proc.stdout
    assert "3 experiments, 3 keep" in status_of(second)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_night_stops_its_run_and_pushes_nothing(repo: Path, tmp_path: Path, sig: int, code: int) -> None:
    """A stop of ci (a cancelled job) reaches the run once: it stops as on a terminal, the
    experiment in progress recorded as interrupted, nothing pushed, nothing left running."""
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("SLEEP = 0.0", "SLEEP = 60.0"))
    simple(repo, "lr_up", "LR = 0.03")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a slow workload")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    work = clone(repo, tmp_path / "night")
    git(work, "remote", "set-url", "origin", str(remote))
    ledger = work / ".autoresearch" / "runs" / "nightly" / "ledger.jsonl"
    try:
        with spawn(work, "ci", env=dict(PATH=bare_path()), ignore_sigint=True) as proc:
            deadline = time.monotonic() + 120
            while '"event": "start"' not in (ledger.read_text() if ledger.is_file() else "") and proc.poll() is None:
                assert time.monotonic() < deadline, "the run never started"
                time.sleep(0.2)
            time.sleep(1.0)
            os.kill(proc.pid, sig)  # ci only: its run has a session of its own, and hears it from ci
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == code, (out, err)
        done = [json.loads(line) for line in ledger.read_text().splitlines() if '"event": "done"' in line]
        assert [d["report"]["status"] for d in done] == ["interrupted"]
        assert git(remote, "for-each-ref") == ""  # nothing pushed
        assert processes_under(work) == []
    finally:
        stop_everything_under(work)
