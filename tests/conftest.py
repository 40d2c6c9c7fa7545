"""Fixtures: real git repositories in temporary folders, with a fast fake workload.

The fake ``train.py`` prints a summary computed from its own constants, so every outcome is
known in advance: val_bpb = 1 + |LR - 0.03| * 10 + (DEPTH - 2) * 0.01, peak_vram_mb = 1024 * DEPTH,
plus SEED_NOISE times the run's AUTORESEARCH_SEED (0 for a commit's first run, so nothing by
default). Its ``CRASH`` constant selects a failure mode; FAKE_FAIL in its environment makes it
fail as a missing data folder would, whatever its code.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from autoresearch.cli import main

# Tests never time things: a property test's example that runs slowly on a loaded machine (a CI
# runner, a script's background) is not a failure, so no Hypothesis deadline anywhere (one test
# failed a fresh-clone run on its 200 ms default at 271 ms).
hypothesis_settings.register_profile("autoresearch", deadline=None)
hypothesis_settings.load_profile("autoresearch")

ROOT = Path(__file__).resolve().parents[1]

FAKE_TRAIN = '''\
LR = 0.01
DEPTH = 4
ACT = "relu"
SLEEP = 0.0
CRASH = ""
SEED_NOISE = 0.0
import os, sys, time
if os.environ.get("FAKE_FAIL"):
    print("error: no prepared data in ./data")
    sys.exit(1)
time.sleep(SLEEP)
if CRASH == "exit":
    print("Traceback (most recent call last):")
    print("ValueError: synthetic failure")
    sys.exit(3)
if CRASH == "nan":
    print("step 00001 (10.0%) | loss nan")
    print("FAIL")
    sys.exit(1)
if CRASH == "oom":
    raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
if CRASH == "nosummary":
    print("all done")
    sys.exit(0)
if CRASH == "hang":
    time.sleep(600)
val = 1.0 + abs(LR - 0.03) * 10 + (DEPTH - 2) * 0.01 + SEED_NOISE * int(os.environ.get("AUTORESEARCH_SEED", "0"))
print("step 00001 (100.0%) | loss 2.500000 | remaining 0s", flush=True)
print("---")
print(f"val_bpb:          {val:.6f}")
print(f"peak_vram_mb:     {1024.0 * DEPTH:.1f}")
print(f"depth:            {DEPTH}")
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed project with the fake workload; the current directory while the test runs."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n')
    (root / "experiments").mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "Test")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    monkeypatch.chdir(root)
    return root


def hyp(root: Path, name: str, body: str) -> Path:
    """Write experiments/<name>.toml."""
    return write(root / "experiments" / f"{name}.toml", body)


def simple(root: Path, name: str, sets: str, expect: str = "", description: str | None = None) -> Path:
    text = f'description = "{description or name}"\nhypothesis = "testing {name}"\n'
    text += f"[set]\n{sets}\n"
    if expect:
        text += f"[expect]\n{expect}\n"
    return hyp(root, name, text)


class Result:
    def __init__(self, rc: int, out: str, err: str) -> None:
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"<rc={self.rc}\nout={self.out}\nerr={self.err}>"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the autoresearch CLI in-process; returns rc, stdout, stderr."""

    def run(*args: str) -> Result:
        rc = main(list(args))
        captured = capsys.readouterr()
        return Result(int(rc), captured.out, captured.err)

    return run


def run_subprocess(root: Path, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoresearch", *args], cwd=root, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, **kw)


def processes_under(root: Path) -> list[int]:
    """Every process whose working folder is inside `root` (a runner, a workload, its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append(int(entry.name))
    return found


def stop_everything_under(root: Path) -> None:
    """SIGKILL whatever still runs in `root` and its process group: nothing a test started outlives it."""
    for _ in range(3):
        pids = processes_under(root)
        if not pids:
            return
        for pid in pids:
            for kill in (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.1)


@contextlib.contextmanager
def spawn(root: Path, *args: str, env: dict[str, str] | None = None, ignore_sigint: bool = False,
          **kw) -> Iterator[subprocess.Popen]:
    """`autoresearch ARGS` in the background, in its own process group; whatever happens in the
    test, it and everything it started are stopped in finally.

    `ignore_sigint` starts it as `cmd &` in a non-interactive shell would: with SIGINT ignored.
    """
    def preexec() -> None:
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen([sys.executable, "-m", "autoresearch", *args], cwd=root, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True, preexec_fn=preexec, **kw)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with contextlib.suppress(Exception):
            proc.communicate(timeout=10)
        stop_everything_under(root)



def processes_of(path: Path) -> list[int]:
    """Every process alive (not a zombie) whose working folder, command line or environment names
    `path` (a test's tmp_path): a runner, a job, a workload, a fake daemon started for the test."""
    needle, found = str(path).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X"):
                continue
            cwd = os.readlink(entry / "cwd").encode()
            if needle in cwd or needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def reap_children() -> None:
    """Reap the test process's children that have exited (orphans it adopted as a subreaper)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return
        if info is None:
            return


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """The test process as a child subreaper while the block runs: a process the test started
    whose parent exits comes to it, not to init (which here reaps only every few seconds: a zombie
    meanwhile), and is reaped at the end. Only where nothing else of the test still runs unwaited."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    try:
        yield
    finally:
        prctl(36, 0, 0, 0, 0)
        reap_children()

# Under pytest-xdist (`-n`), tests whose files are named here run one after another on one worker
# (with --dist loadgroup): each starts a local Ray for its session, and two at once would compete
# for the same cores and /tmp/ray for nothing. Every other test is independent of the others: its
# own tmp_path, ports picked free, processes found by a mark or a folder of its own.
SERIAL_GROUPS = {"test_ray.py": "ray"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = SERIAL_GROUPS.get(item.path.name)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): under pytest-xdist with --dist loadgroup, one worker runs "
                                       "the group's tests one after another")
