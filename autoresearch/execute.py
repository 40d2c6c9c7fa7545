"""Running the workload: its own process group, all output to a log, a hard timeout.

The log is never read whole while training: the runner looks only at its last few KiB to follow
progress, so a workload printing gigabytes costs the runner no memory.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from autoresearch import hookimpl, interrupts, isolation, procs
from autoresearch.isolation import check_links, link_into  # noqa: F401 (link_into: the git plugin's too)
from autoresearch.config import positive
from autoresearch.errors import Stopped
from autoresearch.metrics import NUMBER
from autoresearch.reports import Cause, RunResult, printable

LOSS = re.compile(rf"\bloss[\s:=]+({NUMBER})", re.IGNORECASE)
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)\b.*)$")
POLL_SECONDS = 0.5
DEFAULT_BUDGET = 300.0  # seconds: the workload's own budget when none is set
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
    parser.addsetting("evaluate", type="args", default=[],
                      help="the protected evaluator: a command from the baseline's own files (as of the run's "
                           "first commit, whatever a candidate changes), run after each run of the workload in a "
                           "sandbox of its own with the run's folder read-only; only the metrics it prints decide, "
                           "the workload's own are kept as reported.NAME. Placeholders {python}, {output} (the "
                           "run's folder), {workdir} (the evaluator's folder), {seed}; e.g. "
                           "[\"{python}\", \"prepare.py\", \"evaluate\", \"{output}\"]")
    parser.addsetting("budget_slack", type="float", default=None, check=positive,
                      help="seconds a run may take beyond its time budget (start-up, evaluation) before it is "
                           "marked as overrunning it in every record; default: half the budget, at least 60")
    parser.addsetting("timeout", "--timeout", type="float", default=None,
                      help="hard limit in seconds, after which the workload's whole process group "
                           "is killed and the run is a crash; default: twice the budget, at least "
                           "budget + 60 (10 minutes for 5)", check=positive)


PLACEHOLDER = re.compile(r"\{(python|budget|budget_steps|seed|workdir)\}")


def command(config, experiment=None, workdir: str | None = None) -> list[str]:
    """The workload's arguments, placeholders filled in: {python} (the Python running autoresearch),
    {budget} (seconds), {budget_steps}, {seed} (the run's) and {workdir} (where it runs)."""
    args = list(config.get("command")) or [sys.executable, config.editable[0]]
    budget, steps = budget_seconds(config), config.get("budget_steps")
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
    budget = budget_seconds(config)
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

    def wait(self, seconds: float) -> int | None:
        """The exit code once the command has exited, else None after `seconds`."""
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, grace: float = 2.0) -> None:
        kill_group(self.pid, grace=grace, proc=self.proc)
        self.proc.wait()

    def close(self) -> None:
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
    try:
        while True:
            rc = run.wait(POLL_SECONDS)
            if rc is not None:
                break
            if should_stop is not None and should_stop():
                raise Stopped()
            elapsed = time.monotonic() - start
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
    return RunResult(returncode=rc, duration=time.monotonic() - start, log_path=str(log_path),
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
    elif metric not in result.metrics and result.evaluated is not None:
        cause, message = Cause.EVALUATOR, (f"the evaluator exited 0 but printed no {metric} (it printed "
                                           f"{', '.join(sorted(result.evaluated)[:5]) or 'no metric'})")
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
    elif result.evaluated is None and pattern is None and result.log_path and (times := printed(result.log_path, metric)) > 1:
        cause, message = Cause.FORGED, (f"forged or repeated summary: the log prints {metric} {times} times (a run "
                                        "prints its summary once; set evaluate to have a protected evaluator measure it)")
    return replace(result, cause=cause, message=printable(message)) if cause else result


def printed(log_path: str, metric: str) -> int:
    """How many summary lines (``name: value``) of `metric` the log holds: a run prints its summary
    once, so a second one (the last would win) is forged or repeated. A metric_pattern of the
    user's own may read a line printed many times (progress), where the last one wins by design."""
    from autoresearch.metrics import DEFAULT_PATTERN, parse_metrics

    counts: dict[str, int] = {}
    try:
        parse_metrics(Path(log_path), DEFAULT_PATTERN, metric, counts)
    except OSError:
        return 0
    return counts.get(metric, 0)


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


def evaluate_command(config, experiment, output: Path, workdir: Path) -> list[str]:
    """The evaluate setting's arguments: {python}, {output} (the run's folder, read-only), {workdir}
    (the evaluator's own copy of the baseline's files), {seed}."""
    fill = {"python": sys.executable, "output": str(output), "workdir": str(workdir), "seed": str(experiment.seed)}
    return [re.sub(r"\{(python|output|workdir|seed)\}", lambda m: fill[m.group(1)], arg)
            for arg in config.get("evaluate")]


def overrun(config, duration: float) -> float:
    """Seconds a run went past its time budget and the slack (startup, evaluation): 0 within them."""
    budget = budget_seconds(config)
    slack = config.get("budget_slack")
    slack = max(60.0, budget / 2) if slack is None else slack
    return max(0.0, duration - budget - slack)


def budget_seconds(config) -> float:
    return config.get("budget") or DEFAULT_BUDGET


@hookimpl(trylast=True)
def autoresearch_experiment_run(experiment) -> RunResult:
    """The local executor: the command in a fresh run folder outside the project, in the session's
    sandbox, with a clean environment; then, with the evaluate setting, the protected evaluator."""
    session = experiment.session
    config = session.config
    level = session.sandbox
    seed = experiment.seed
    folder = isolation.make_run_folder(experiment.workdir, experiment.label)
    try:
        env = isolation.clean_env(run_env(experiment), str(folder), config.get("pass_env") or ())

        def on_progress(elapsed: float, line: str, loss: float | None) -> str | None:
            return stop_reason(config.hook.autoresearch_experiment_progress(
                experiment=experiment, elapsed=elapsed, line=line, loss=loss))

        argv = isolation.wrap(level, config, command(config, experiment, workdir=str(folder)), folder, [folder])
        result = run_command(argv, folder, experiment.log_path, env, timeout(config), on_start=session.record_pid,
                             on_progress=on_progress, should_stop=experiment.should_stop,
                             max_log=int(config.get("max_log_mb") * 2**20))
        result = replace(result, seed=seed, overrun=overrun(config, result.duration))
        if config.get("evaluate") and result.returncode == 0 and not result.cause:
            result = evaluated(experiment, result, folder)
        return result
    finally:
        isolation.remove(folder)


def evaluated(experiment, result: RunResult, folder: Path) -> RunResult:
    """The protected evaluator on a finished run: the baseline's own files, run in a sandbox of its
    own with the run's folder read-only. Only what it prints decides; a failure is the run's crash."""
    from autoresearch.metrics import parse_metrics

    session, config = experiment.session, experiment.session.config
    scratch = Path(tempfile.mkdtemp(prefix=f"autoresearch-eval-{experiment.label}-"))
    log_path = Path(str(experiment.log_path)[:-len(".log")] + ".eval.log")
    try:
        # how the evaluator runs the candidate's code (its model) in a sandbox of its own: this
        # argv, then the command; only the scratch folder is writable there
        candidate = isolation.wrap(session.sandbox, config, [], folder, writable=[scratch])
        env = isolation.clean_env({**run_env(experiment), "AUTORESEARCH_OUTPUT": str(folder),
                                   "AUTORESEARCH_SANDBOX": json.dumps(candidate),
                                   "AUTORESEARCH_SCRATCH": str(scratch)}, str(scratch),
                                  config.get("pass_env") or ())
        argv = isolation.wrap(session.sandbox, config, evaluate_command(config, experiment, folder, session.evaluator),
                              session.evaluator, readonly=[folder], writable=[scratch])
        ran = run_command(argv, session.evaluator, log_path, env, timeout(config), should_stop=experiment.should_stop,
                          max_log=int(config.get("max_log_mb") * 2**20))
    finally:
        isolation.remove(scratch)
    if ran.cause or ran.returncode:
        why = ran.message or f"exit code {ran.returncode}: {log_tail(str(log_path), 1)[:200]}"
        return replace(result, cause=Cause.EVALUATOR, message=printable(f"the evaluator failed ({why}); see {log_path}"))
    found = parse_metrics(log_path, config.get("metric_pattern"), config.get("metric"))
    return replace(result, evaluated=found, duration=result.duration + ran.duration)
