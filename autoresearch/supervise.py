"""Supervising a run of the workload, whichever executor started it: the one watch loop (the time
limit, progress hooks and pruning, the session's stop, Ctrl-C), and the local run's process group
and capped log.

The log is never read whole while training: the runner looks only at its last few KiB to follow
progress, so a workload printing gigabytes costs the runner no memory. An executor supplies a run
object with ``wait(seconds)``, ``kill(grace)`` and ``close()`` (:class:`LocalRun` here, RayRun in
``plugins/ray.py``, SlurmRun in ``plugins/slurm_run.py``), and optionally ``elapsed()`` (the seconds
the time limit counts, when not since the call: a job waiting in a queue), and calls :func:`supervise`.
"""
from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from autoresearch import interrupts
from autoresearch.errors import Stopped
from autoresearch.metrics import NUMBER
from autoresearch.reports import Cause, RunResult

LOSS = re.compile(rf"\bloss[\s:=]+({NUMBER})", re.IGNORECASE)
POLL_SECONDS = 0.5
TAIL_BYTES = 4096


def kill_group(pgid: int, grace: float = 2.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left (grandchildren included).

    With `proc` (the group's leader, our child), waiting ends as soon as it has exited: its
    zombie would otherwise keep the group looking alive for the whole grace period.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_tail(path: Path, nbytes: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def progress(tail: str) -> tuple[str, float | None]:
    """(the last complete line, the latest loss) from the end of a log."""
    lines = tail.splitlines()
    if tail and not tail.endswith("\n") and lines:
        lines = lines[:-1]  # still being written
    last = lines[-1] if lines else ""
    for line in reversed(lines):
        m = LOSS.search(line)
        if m:
            return last, float(m.group(1))
    return last, None


class LogPump:
    """Copies a run's output from its pipe into its log, in a thread of its own, capped at `cap`
    bytes: the first half of the cap is kept, then the latest output, with a note of what was
    dropped between them. The runner's memory stays flat whatever the run prints."""

    NOTE = b"\n[autoresearch: %d bytes of output dropped here: the log is capped by max_log_mb]\n"

    def __init__(self, fd: int, log, cap: int) -> None:
        self.fd, self.log, self.cap = fd, log, max(cap, 4096)
        self.head = self.cap // 2
        self.dropped = 0
        self.thread = threading.Thread(target=self.run, name="autoresearch-log", daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            while data := os.read(self.fd, 1 << 16):
                self.log.write(data)
                self.log.flush()  # readable at once: the live line, progress hooks, pruning
                if self.log.tell() > self.cap:
                    self.trim()
        except (OSError, ValueError):
            pass
        finally:
            try:
                self.log.flush()
            except (OSError, ValueError):
                pass

    def trim(self) -> None:
        """Keep the head, the note and the last quarter of the cap: about 1x extra writing overall."""
        self.log.flush()
        size = self.log.tell()
        keep = self.cap // 4
        self.log.seek(size - keep)
        tail = self.log.read(keep)
        start = self.head + (len(self.NOTE % self.dropped) if self.dropped else 0)
        self.dropped += size - keep - start
        self.log.seek(self.head)
        self.log.write(self.NOTE % self.dropped)
        self.log.write(tail)
        self.log.truncate()
        self.log.flush()

    def join(self, grace: float = 2.0) -> None:
        """Wait for the output to end (the run and all it started have exited), at most `grace` s."""
        self.thread.join(grace)


class LocalRun:
    """A run of a command here: its own process group, its output through a capped :class:`LogPump`.
    What :func:`supervise` needs of any executor's run: ``wait``, ``kill`` and ``close``."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log, max_log: int) -> None:
        self.proc: subprocess.Popen | None = None
        self.pump: LogPump | None = None
        read, write = os.pipe()
        try:
            self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=write, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError:
            os.close(read)
            raise
        finally:
            os.close(write)
        self.pid = self.proc.pid
        self.pump = LogPump(read, log, max_log)
        try:  # woken the moment it exits (Popen.wait's timeout polls with sleeps of up to 50 ms)
            self.pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def wait(self, seconds: float) -> int | None:
        """The exit code once the command has exited, else None after `seconds`."""
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], seconds)
            return self.proc.poll()
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, grace: float = 2.0) -> None:
        kill_group(self.pid, grace=grace, proc=self.proc)
        self.proc.wait()

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        try:  # grandchildren that outlived their parent
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.pump.join()
        if not self.pump.thread.is_alive():  # else a process of the run still holds the pipe: leave it
            os.close(self.pump.fd)


def supervise(run, log_path: Path, limit: float,
              on_progress: Callable[[float, str, float | None], str | None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> RunResult:
    """The one watch loop of every executor: wait for the run, kill it at the time limit, when a
    progress hook asks (pruned) or when the session stops; a Ctrl-C or SIGTERM kills it too.

    In the main thread a Ctrl-C or SIGTERM arrives as an exception; in a worker's thread the run
    loop asks for the stop (`should_stop`), and the run is killed and :class:`Stopped` raised
    within half a second.
    """
    start = time.monotonic()
    clock = getattr(run, "elapsed", None)  # a run that waits in a queue first (Slurm's) counts from its start
    try:
        while True:
            rc = run.wait(POLL_SECONDS)
            if rc is not None:
                break
            if should_stop is not None and should_stop():
                raise Stopped()
            elapsed = clock() if clock else time.monotonic() - start
            if elapsed > limit:
                run.kill()
                return RunResult(returncode=None, duration=elapsed, log_path=str(log_path), cause=Cause.TIMEOUT,
                                 message=f"timeout: killed after {elapsed:.0f}s (limit {limit:.0f}s)")
            reason = on_progress(elapsed, *progress(read_tail(log_path))) if on_progress else None
            if reason:  # a plugin stopped it (pruned): killed as at a timeout, a decision rather than a crash
                run.kill()
                return RunResult(returncode=None, duration=elapsed, log_path=str(log_path), cause=Cause.PRUNED,
                                 message=reason)
    except BaseException:  # Ctrl-C, SIGTERM: never leave the workload running
        with interrupts.deferred():  # a second Ctrl-C does not cut the kill short
            run.kill(grace=1.0)
        raise
    finally:
        run.close()
    return RunResult(returncode=rc, duration=clock() if clock else time.monotonic() - start, log_path=str(log_path),
                     signal=-rc if rc < 0 else None)


def run_command(cmd: list[str], cwd: Path, log_path: Path, env: dict[str, str], limit: float,
                on_start: Callable[[int], None] | None = None,
                on_progress: Callable[[float, str, float | None], str | None] | None = None,
                should_stop: Callable[[], bool] | None = None, max_log: int = 100 * 2**20) -> RunResult:
    """Run `cmd` here, stdout and stderr to `log_path` (capped at `max_log` bytes), supervised."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w+b") as log:
        # started and recorded as one step: a stop arriving meanwhile is raised only once the
        # workload is known, so the supervisor can always kill it
        with interrupts.critical():
            try:
                run = LocalRun(cmd, cwd, env, log, max_log)
            except OSError as exc:  # the command itself is missing or not executable: a crash
                log.write(f"autoresearch: cannot start {shlex.join(cmd)}: {exc}\n".encode())
                return RunResult(returncode=127, duration=0.0, log_path=str(log_path))
            if on_start:
                on_start(run.pid)
        return supervise(run, log_path, limit, on_progress, should_stop)
