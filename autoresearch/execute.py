"""Running the workload: its own process group, all output to a log, a hard timeout.

The log is never read whole while training: the runner looks only at its last few KiB to follow
progress, so a workload printing gigabytes costs the runner no memory.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from autoresearch import gitobjects, hookimpl, isolation, procs
from autoresearch.isolation import check_links, link_into  # noqa: F401 (link_into: the git plugin's too)
from autoresearch.supervise import (POLL_SECONDS, kill_group, progress, read_tail,  # noqa: F401 (re-exported)
                                    run_command, supervise)
from autoresearch.config import positive
from autoresearch.reports import Cause, RunResult, printable

EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)\b.*)$")
DEFAULT_BUDGET = 300.0  # seconds: the workload's own budget when none is set


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
    {budget} (seconds), {budget_steps}, {seed} (the run's) and {workdir} (where it runs); with the
    flags and overrides of autoresearch.args.toml merged in (never filled in)."""
    args = list(config.get("command")) or [sys.executable, config.editable[0]]
    budget, steps = run_budget(config, experiment)
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

    merged = merge_args_file(args, workdir, experiment)
    return [arg if ours else PLACEHOLDER.sub(fill, arg) for arg, ours in merged]


def merge_args_file(args: list[str], workdir: str, experiment=None) -> list[tuple[str, bool]]:
    """The command with the run's autoresearch.args.toml merged in (the args and overrides patch
    kinds write it; see autoresearch.patches.argv), as (argument, from the file) pairs; the file is
    read from the run's folder, or the experiment's worktree when the folder is not made yet."""
    from autoresearch.patches.argv import ARGS_FILE, merged_command

    folder = Path(workdir)
    path = folder / ARGS_FILE if folder.is_dir() or experiment is None else Path(experiment.workdir) / ARGS_FILE
    if path.is_symlink() or not path.is_file():
        return [(arg, False) for arg in args]
    try:
        return merged_command(args, path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        from autoresearch.errors import UsageError

        raise UsageError(f"{path}: {exc}") from None


def timeout(config, experiment=None) -> float:
    """The hard limit of a run: the timeout setting, else twice the budget, at least budget + 60 s;
    a smoke run's (autoresearch/smoke.py): its own budget plus as much again, at least budget_slack
    (default 60 s: start-up, compilation), never above the full one."""
    if config.get("timeout"):
        full = float(config.get("timeout"))
    else:
        budget = budget_seconds(config)
        full = max(2 * budget, budget + 60)
    smoke = getattr(experiment, "smoke", None)
    if smoke is not None and smoke.budget:
        slack = config.get("budget_slack")
        return min(full, smoke.budget + max(smoke.budget, 60.0 if slack is None else slack))
    return full


def run_budget(config, experiment=None) -> tuple[float, int | None]:
    """(seconds, steps) a run gets: the budget settings', or a smoke run's where it sets them."""
    smoke = getattr(experiment, "smoke", None)
    budget, steps = budget_seconds(config), config.get("budget_steps")
    if smoke is not None:
        budget, steps = smoke.budget or budget, smoke.steps or steps
    return budget, steps


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
    budget, steps = run_budget(session.config, experiment)
    if session.config.get("budget") or getattr(experiment, "smoke", None) is not None:
        env["AUTORESEARCH_TIME_BUDGET"] = f"{budget:g}"
    if steps:
        env["AUTORESEARCH_MAX_STEPS"] = str(steps)
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
    folder = isolation.make_run_folder(config, tree(experiment), experiment.label)
    try:
        env = isolation.clean_env(run_env(experiment), str(folder), config.get("pass_env") or ())

        def on_progress(elapsed: float, line: str, loss: float | None) -> str | None:
            return stop_reason(config.hook.autoresearch_experiment_progress(
                experiment=experiment, elapsed=elapsed, line=line, loss=loss))

        argv = isolation.wrap(level, config, command(config, experiment, workdir=str(folder)), folder, [folder])
        result = run_command(argv, folder, experiment.log_path, env, timeout(config, experiment), on_start=session.record_pid,
                             on_progress=on_progress, should_stop=experiment.should_stop,
                             max_log=int(config.get("max_log_mb") * 2**20))
        result = replace(result, seed=seed, overrun=overrun(config, result.duration))
        if config.get("evaluate") and result.returncode == 0 and not result.cause:
            result = evaluated(experiment, result, folder)
        return result
    finally:
        isolation.remove(folder)


_trees = threading.Lock()


def tree(experiment) -> isolation.runfolder.Tree:
    """The files of the experiment's commit, read once and kept for the commit's next runs (the
    four used last). A new commit's files are its base's with the few files it changed read from
    git's loose objects where that is exact (:mod:`autoresearch.gitobjects`; the git plugin says
    which), else ``git archive``'s."""
    session = experiment.session
    commit = "" if session.scratch else (experiment.commit or session.tip)
    data = cached_tree(session, commit)
    if data is None and commit and getattr(experiment, "committed", None) and experiment.commit == commit:
        common, base, paths = experiment.committed
        base_tree = cached_tree(session, base) or keep_tree(session, base, isolation.archive(session.config, base))
        data = gitobjects.derive(common, base, base_tree, commit, paths, isolation.run_exclude(session.config))
    if data is None:
        data = isolation.archive(session.config, commit, experiment.workdir)
    return keep_tree(session, commit, data) if commit else data


def cached_tree(session, commit: str) -> isolation.runfolder.Tree | None:
    with _trees:  # workers' threads share the cache
        data = session.trees.pop(commit, None) if commit else None
        if data is not None:
            session.trees[commit] = data  # the latest used, last
    return data


def keep_tree(session, commit: str, data: isolation.runfolder.Tree) -> isolation.runfolder.Tree:
    with _trees:
        session.trees.pop(commit, None)
        while len(session.trees) >= 4:
            session.trees.pop(next(iter(session.trees)))
        session.trees[commit] = data
    return data


def evaluated(experiment, result: RunResult, folder: Path) -> RunResult:
    """The protected evaluator on a finished run: the baseline's own files, run in a sandbox of its
    own with the run's folder read-only. Only what it prints decides; a failure is the run's crash."""
    from autoresearch.metrics import parse_metrics

    session, config = experiment.session, experiment.session.config
    scratch = Path(tempfile.mkdtemp(prefix=f"autoresearch-eval-{experiment.label}-"))
    log_path = Path(str(experiment.log_path)[:-len(".log")] + ".eval.log")
    files = isolation.evaluator_folder(session, experiment.label)
    try:
        # how the evaluator runs the candidate's code (its model) in a sandbox of its own: this
        # argv, then the command; only the scratch folder is writable there
        candidate = isolation.wrap(session.sandbox, config, [], folder, writable=[scratch])
        env = isolation.clean_env({**run_env(experiment), "AUTORESEARCH_OUTPUT": str(folder),
                                   "AUTORESEARCH_SANDBOX": json.dumps(candidate),
                                   "AUTORESEARCH_SCRATCH": str(scratch)}, str(scratch),
                                  config.get("pass_env") or ())
        argv = isolation.wrap(session.sandbox, config, evaluate_command(config, experiment, folder, files),
                              files, readonly=[folder], writable=[scratch])
        ran = run_command(argv, files, log_path, env, timeout(config), should_stop=experiment.should_stop,
                          max_log=int(config.get("max_log_mb") * 2**20))
    finally:
        isolation.remove(scratch)
        if files != session.evaluator_dir:
            isolation.remove(files)
    if ran.cause or ran.returncode:
        why = ran.message or f"exit code {ran.returncode}: {log_tail(str(log_path), 1)[:200]}"
        return replace(result, cause=Cause.EVALUATOR, message=printable(f"the evaluator failed ({why}); see {log_path}"))
    found = parse_metrics(log_path, config.get("metric_pattern"), config.get("metric"))
    return replace(result, evaluated=found, duration=result.duration + ran.duration)
