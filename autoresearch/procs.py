"""Finding the processes a run left behind, through /proc (Linux; elsewhere none are found).

Every workload starts with ``AUTORESEARCH_RUN=<the run's folder>`` in its environment, which its
children inherit: so a workload a killed runner left training is found on resume even when the
runner died before it could write the workload's pid anywhere.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

MARKER = "AUTORESEARCH_RUN"


def _pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return []


def marked(run_dir: Path) -> list[int]:
    """The processes started for the run in `run_dir` (a workload, its children), still alive."""
    needle = f"{MARKER}={run_dir.resolve()}".encode() + b"\0"
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read() + b"\0"
        except OSError:
            continue
        if b"\0" + needle in b"\0" + env and not _zombie(pid):
            found.append(pid)
    return found


def git_processes_under(root: Path) -> list[int]:
    """Running git commands whose working folder is inside `root`, but for our own children
    (GitPython keeps a ``git cat-file --batch`` of ours running)."""
    prefix = str(root.resolve())
    found = []
    for pid in _pids():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        state = _stat(pid)
        if comm.startswith("git") and (cwd == prefix or cwd.startswith(prefix + "/")) and state[0] != "Z" \
                and state[1:] != [str(os.getpid())]:
            found.append(pid)
    return found


def _stat(pid: int) -> list[str]:
    """(state, parent pid) of a process; a vanished process reads as a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, IndexError):
        return ["Z"]


def _zombie(pid: int) -> bool:
    return _stat(pid)[0] == "Z"


def kill_marked(run_dir: Path, grace: float = 1.0) -> list[int]:
    """Stop every process of the run (SIGTERM to its group, then SIGKILL); returns their pids."""
    pids = marked(run_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                group = os.getpgid(pid)
                if group != os.getpgrp():  # never our own group
                    os.killpg(group, sig)
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(not _zombie(p) and os.path.exists(f"/proc/{p}") for p in pids):
            time.sleep(0.05)
    return pids
