"""The sandbox launcher (autoresearch/sandbox.py) as the runner starts it (isolation.launcher_argv):
it imports its own module from the package, never from the run's folder, at every level; it ends
whatever the command left behind, and ends as the command ended."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from autoresearch import isolation

PLANTED = ("sandbox", "os", "time", "ctypes", "struct", "resource", "fcntl", "socket", "encodings", "signal", "enum")


def levels() -> list[str]:
    ok, _ = isolation.probe(False)
    return ["none", "subreaper"] + (["namespaces"] if ok else [])


def launch(folder: Path, level: str, command: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    spec = {"level": level, "cwd": str(folder), "writable": [str(folder)], "limits": {"fsize": 2**30}}
    return subprocess.run(isolation.launcher_argv(spec, command), check=False, cwd=folder, capture_output=True,
                          text=True, timeout=timeout, env=isolation.clean_env({}, str(folder)))


@pytest.mark.parametrize("level", levels())
def test_the_launcher_never_imports_from_the_runs_folder(tmp_path, level):
    """A candidate's files named like the launcher's modules (its own name included) are not run."""
    marker = tmp_path / "ran"
    for name in PLANTED:
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    r = launch(tmp_path, level, ["/bin/sh", "-c", "echo started"])
    assert r.returncode == 0 and r.stdout == "started\n", r
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("level", [lv for lv in levels() if lv != "none"])
def test_what_the_command_leaves_behind_is_ended_with_it(tmp_path, level):
    """A child in the background, one detached in a session of its own: both gone when the launcher is."""
    script = "sleep 60 & echo $!; setsid sleep 61 & echo $!; exit 0"
    pidfile = tmp_path / "pids"
    r = launch(tmp_path, level, ["/bin/sh", "-c", f"({script}) > {pidfile}"])
    assert r.returncode == 0, r
    if level == "namespaces":  # pids of another namespace: none of them may still be running, by name
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) in
                    ("sleep\x0060\x00", "sleep\x0061\x00") and _under(p, tmp_path)]
        return
    pids = [int(pid) for pid in pidfile.read_text().split()]
    try:
        for pid in pids:
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not _alive(pid), f"{pid} outlived the run"
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.mark.parametrize("level", levels())
def test_the_launcher_ends_as_the_command_ended(tmp_path, level):
    assert launch(tmp_path, level, ["/bin/sh", "-c", "exit 3"]).returncode == 3
    assert launch(tmp_path, level, ["/bin/sh", "-c", "kill -TERM $$"]).returncode == -signal.SIGTERM
    assert launch(tmp_path, level, ["/nonexistent/command"]).returncode == 127


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_text()
    except OSError:
        return ""


def _under(p: Path, folder: Path) -> bool:
    try:
        return os.readlink(p / "cwd").startswith(str(folder))
    except OSError:
        return False
