"""Running the workload: its own process group, all output to a log, a hard timeout.

The log is never read whole while training: the runner looks only at its last few KiB to follow
progress, so a workload printing gigabytes costs the runner no memory.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from autoresearch import hookimpl, interrupts, procs
from autoresearch.config import positive
from autoresearch.errors import Stopped
from autoresearch.metrics import NUMBER
from autoresearch.reports import Cause, RunResult, printable

LOSS = re.compile(rf"\bloss[\s:=]+({NUMBER})", re.IGNORECASE)
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)\b.*)$")
POLL_SECONDS = 0.5
TAIL_BYTES = 4096


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("command", "--command", type="args", default=[],
                      help="the workload command: a list of arguments, or one string split as a shell "
                           "would (no shell runs it), with the placeholders {python}, {budget}, {budget_steps}, "
                           "{seed} and {workdir}; default: this Python running the first editable file")
    parser.addsetting("budget", "--budget", type="float", default=None,
                      help="training budget in seconds, passed to the workload as "
                           "AUTORESEARCH_TIME_BUDGET; default: the workload's own (300 s)", check=positive)
    parser.addsetting("budget_steps", "--budget-steps", type="int", default=None,
                      help="training budget in optimizer steps, passed as AUTORESEARCH_MAX_STEPS: the same "
                           "work every run, however busy the machine (the time budget still caps it)",
                      check=positive)
    parser.addsetting("link", type="list", default=[], check=check_links,
                      help="files or folders the workload needs that git does not track (a data folder): "
                           "linked into every worktree a run uses")
    parser.addsetting("timeout", "--timeout", type="float", default=None,
                      help="hard limit in seconds, after which the workload's whole process group "
                           "is killed and the run is a crash; default: twice the budget, at least "
                           "budget + 60 (10 minutes for 5)", check=positive)


def check_links(names: list[str]) -> str | None:
    from autoresearch.config import inside

    for name in names:
        if inside(name) or any(not c.isprintable() for c in name) or any(c in name for c in "*?[]!#"):
            return f"{name!r} must be a plain path inside the project (data, not ../data, /data or a pattern)"
    return None


def link_into(config, work: Path) -> None:
    """Link the `link` files and folders of the project into a worktree (where git left them out)."""
    for name in config.get("link") or []:
        source, target = config.rootdir / name, work / name
        if not os.path.lexists(source):
            from autoresearch.errors import UsageError

            raise UsageError(f"link: {name} does not exist in {config.rootdir}: create it first (run your data "
                             "preparation), or take it out of link")
        if os.path.lexists(target):
            continue  # tracked after all, or linked already
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


PLACEHOLDER = re.compile(r"\{(python|budget|budget_steps|seed|workdir)\}")


def command(config, experiment=None, workdir: str | None = None) -> list[str]:
    """The workload's arguments, placeholders filled in: {python} (the Python running autoresearch),
    {budget} (seconds), {budget_steps}, {seed} (the run's) and {workdir} (where it runs)."""
    args = list(config.get("command")) or [sys.executable, config.editable[0]]
    budget, steps = config.get("budget") or 300.0, config.get("budget_steps")
    if workdir is None:
        workdir = str(experiment.workdir) if experiment is not None else str(config.rootdir)

    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name == "budget_steps" and steps is None:
            from autoresearch.errors import UsageError

            raise UsageError("command uses {budget_steps} but budget_steps is not set (set budget_steps = N in "
                             "[tool.autoresearch], or --budget-steps N)")
        return {"python": sys.executable, "budget": f"{budget:g}", "budget_steps": str(steps),
                "seed": str(experiment.seed if experiment is not None else 0), "workdir": workdir}[name]

    return [PLACEHOLDER.sub(fill, arg) for arg in args]


def timeout(config) -> float:
    if config.get("timeout"):
        return float(config.get("timeout"))
    budget = config.get("budget") or 300.0
    return max(2 * budget, budget + 60)


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


def run_command(cmd: list[str], cwd: Path, log_path: Path, env: dict[str, str], limit: float,
                on_start: Callable[[int], None] | None = None,
                on_progress: Callable[[float, str, float | None], str | None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Run `cmd` in a new process group, stdout and stderr to `log_path`, killed after `limit` s.

    In the main thread a Ctrl-C or SIGTERM arrives as an exception; in a worker's thread the run
    loop asks for the stop (`should_stop`), and the run is killed and :class:`Stopped` raised
    within half a second.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc: subprocess.Popen | None = None
    try:
        # started and recorded as one step: a stop arriving meanwhile is raised only once the
        # workload is known, so the except below can always kill it
        with interrupts.critical(), open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            except OSError as exc:  # the command itself is missing or not executable: a crash
                log.write(f"autoresearch: cannot start {shlex.join(cmd)}: {exc}\n".encode())
                return RunResult(returncode=127, duration=0.0, log_path=str(log_path))
            if on_start:
                on_start(proc.pid)
        while True:
            try:
                proc.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if should_stop is not None and should_stop():
                raise Stopped()
            elapsed = time.monotonic() - start
            if elapsed > limit:
                kill_group(proc.pid, proc=proc)
                proc.wait()
                return RunResult(returncode=None, duration=elapsed, log_path=str(log_path), cause=Cause.TIMEOUT,
                                 message=f"timeout: killed after {elapsed:.0f}s (limit {limit:.0f}s)")
            reason = on_progress(elapsed, *progress(read_tail(log_path))) if on_progress else None
            if reason:  # a plugin stopped it (pruned): killed as at a timeout, a decision rather than a crash
                kill_group(proc.pid, proc=proc)
                proc.wait()
                return RunResult(returncode=None, duration=elapsed, log_path=str(log_path), cause=Cause.PRUNED,
                                 message=reason)
    except BaseException:  # Ctrl-C, SIGTERM: never leave the workload running
        if proc is not None:
            with interrupts.deferred():  # a second Ctrl-C does not cut the kill short
                kill_group(proc.pid, grace=1.0, proc=proc)
                proc.wait()
        raise
    finally:
        if proc is not None:
            try:  # grandchildren that outlived their parent
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    rc = proc.returncode
    return RunResult(returncode=rc, duration=time.monotonic() - start, log_path=str(log_path),
                     signal=-rc if rc < 0 else None)


def worker_env(session, worker: int) -> dict[str, str]:
    """What a worker's runs get in their environment when several run at once: a device of their
    own (CUDA_VISIBLE_DEVICES), or, without GPUs, their share of the CPU cores (OMP_NUM_THREADS,
    and AUTORESEARCH_THREADS, which train.py gives torch)."""
    if session.workers <= 1:
        return {}
    if session.devices:
        return {"CUDA_VISIBLE_DEVICES": session.devices[worker % len(session.devices)]}
    threads = str(max(1, (os.cpu_count() or 1) // session.workers))
    return {"OMP_NUM_THREADS": threads, "AUTORESEARCH_THREADS": threads}


def classify(result: RunResult, metric: str, pattern: str | None = None) -> RunResult:
    """The run with its cause filled in when it gave no usable result: data, and one line for people.

    How the process ended decides first (a timeout or an interrupt is already set by whoever
    stopped it), then the log's tail: out of memory, a NaN loss (the workload printed FAIL), an
    exception; then the metric itself: missing or NaN.
    """
    if result.cause:
        return result
    tail = read_tail(Path(result.log_path), 16384) if result.log_path else ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    cause, message = "", ""
    if result.signal:
        name = signal.Signals(result.signal).name if result.signal in signal.valid_signals() else str(result.signal)
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if result.signal == signal.SIGKILL else ""
        cause, message = Cause.KILLED, f"killed by {name} from outside the runner{hint}"
    elif result.returncode:
        memory = next((line for line in reversed(lines) if "out of memory" in line.lower()
                       or "OutOfMemoryError" in line or line.startswith("MemoryError")), None)
        exception = next((line for line in reversed(lines) if line.startswith("error:") or EXCEPTION.match(line)), None)
        if memory:
            cause, message = Cause.OUT_OF_MEMORY, f"out of memory: {memory[:200]}"
        elif any(line.startswith("FAIL") for line in lines[-5:]):
            cause, message = Cause.NAN, "loss became NaN or exploded (the workload printed FAIL)"
        elif exception:
            cause, message = Cause.EXIT_CODE, exception[:300]
            if re.search(r"FileNotFoundError|No such file or directory", exception):
                message += (" (a file git ignores, such as a data folder, is not in the run's worktree: list it "
                            "in link = [...] under [tool.autoresearch])")
        else:
            last = f": {lines[-1][:200]}" if lines else " and printed nothing"
            cause, message = Cause.EXIT_CODE, f"exit code {result.returncode}{last}"
    elif metric not in result.metrics and pattern:
        cause, message = Cause.NO_METRIC, (f"exited 0 but no line matched metric_pattern {pattern!r}: check it "
                                           f"against the log (it must read {metric} from what the script prints)")
    elif metric not in result.metrics:
        others = ", ".join(sorted(result.metrics)[:5])
        cause, message = Cause.NO_METRIC, (
            f"exited 0 but printed no {metric}: print a line `{metric}: 1.234`, or set metric_pattern to a regular "
            f"expression with a (?P<value>...) group that reads your format"
            + (f"; it printed {others} (set metric = one of them?)" if others else ""))
    elif not math.isfinite(result.metrics[metric]):
        cause, message = Cause.NAN, f"{metric} is {result.metrics[metric]}"
    return replace(result, cause=cause, message=printable(message)) if cause else result


def log_tail(path: str, lines: int = 50) -> str:
    """The last lines of a log (the seed's tail -n 50), for crash reports."""
    return "\n".join(read_tail(Path(path), 16384).splitlines()[-lines:])


def stop_reason(answers: list) -> str | None:
    """The first reason a progress hook gave to stop the run, if any did."""
    return next((str(a) for a in answers if a), None)


def run_env(experiment) -> dict[str, str]:
    """What a run of the workload finds in its environment, beyond the runner's own: the workload
    contract (AUTORESEARCH_SEED, _TIME_BUDGET, _MAX_STEPS, _TAG, _EXPERIMENT), the run's marker, the worker's
    device or share of the cores."""
    session = experiment.session
    env = {"PYTHONUNBUFFERED": "1", "AUTORESEARCH_TAG": session.tag, "AUTORESEARCH_EXPERIMENT": experiment.nodeid,
           "AUTORESEARCH_SEED": str(experiment.seed),
           procs.MARKER: str(session.run_dir.resolve())}  # finds it, and its children, after a kill
    env.update(worker_env(session, experiment.worker))
    if session.config.get("budget"):
        env["AUTORESEARCH_TIME_BUDGET"] = f"{session.config.get('budget'):g}"
    if session.config.get("budget_steps"):
        env["AUTORESEARCH_MAX_STEPS"] = str(session.config.get("budget_steps"))
    return env


@hookimpl(trylast=True)
def autoresearch_experiment_run(experiment) -> RunResult:
    """The local executor: the command in the experiment's workdir, its own process group, a log."""
    session = experiment.session
    config = session.config
    seed = experiment.seed
    env = {**os.environ, **run_env(experiment)}

    def on_progress(elapsed: float, line: str, loss: float | None) -> str | None:
        return stop_reason(config.hook.autoresearch_experiment_progress(
            experiment=experiment, elapsed=elapsed, line=line, loss=loss))

    result = run_command(command(config, experiment), experiment.workdir, experiment.log_path, env, timeout(config),
                         on_start=session.record_pid, on_progress=on_progress, should_stop=experiment.should_stop)
    return replace(result, seed=seed)
