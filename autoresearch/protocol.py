"""The experiment protocol: two hooks, the same for one worker or many.

    autoresearch_experiment_measure   on a worker's thread with -n > 1 (on the main thread with one):
      record_start                      ledger: the experiment begins
      autoresearch_experiment_setup     protected files checked, patch applied (git: committed)
      autoresearch_experiment_logstart  the journal's PLANNED entry
      repeat:
        autoresearch_experiment_run     one run of the workload (AUTORESEARCH_SEED 0, 1, ...)
        autoresearch_parse_metrics      its metrics, from its log
      while autoresearch_experiment_rerun says so
    autoresearch_experiment_decide    on the main thread, in dispatch order:
      autoresearch_make_verdict         keep, discard or crash (with the tip's runs to compare)
      autoresearch_make_report          the frozen Report (the expectation is added by a plugin)
      record_done                       ledger: the commit point, and the tip it leaves
      autoresearch_experiment_logreport results.tsv, journal, terminal, ...
      autoresearch_experiment_teardown  git: the branch is moved to the tip

A run loop calls :func:`runprotocol` (one experiment, start to end), or the two hooks itself, as
plugins/workers.py does, and :func:`interrupted` for an experiment a stop cut short. A plugin that
wraps or replaces either hook works the same for any number of workers.

The core's own fallbacks for a session without the git or verdict plugins live here too.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import replace
from pathlib import Path

from autoresearch import hookimpl, interrupts
from autoresearch.errors import ConflictError, OutputClosed, PatchError, Stopped, Terminated, UsageError
from autoresearch.execute import classify, log_tail
from autoresearch.patches import patch_kinds
from autoresearch.reports import Cause, Report, RunResult, Status, Verdict, better, failed_verdict

STOPS = {KeyboardInterrupt: "SIGINT (Ctrl-C)", Terminated: "SIGTERM", OutputClosed: "a closed output (| head)",
         Stopped: "the session stopping early (-x)"}


def runprotocol(exp) -> Report:
    """Run one experiment through both hooks; returns its report (also on a recorded crash). A stop
    before its commit point records it as interrupted, and goes on up."""
    hook = exp.session.config.hook
    try:
        hook.autoresearch_experiment_measure(experiment=exp)
        return hook.autoresearch_experiment_decide(experiment=exp)
    except (KeyboardInterrupt, Terminated, OutputClosed) as exc:
        interrupted(exp, exc)
        raise


@hookimpl(trylast=True)
def autoresearch_experiment_measure(experiment) -> bool:
    if prepare(experiment) and not experiment.session.stopping.is_set():
        measure(experiment)
    return True


@hookimpl(trylast=True)
def autoresearch_experiment_decide(experiment) -> Report:
    return decide(experiment)


# The default phases: prepare and measure make the measure hook, decide the decide hook.


def prepare(exp) -> bool:
    """Record the start, set the experiment up, and log it as planned; False if its patch could
    not be applied (the failed run is recorded on it, and it has nothing to measure)."""
    hook = exp.session.config.hook
    exp.session.record_start(exp)
    try:
        if exp.base_error:
            raise PatchError(exp.base_error)
        hook.autoresearch_experiment_setup(experiment=exp)
    except PatchError as exc:  # nothing to run: recorded (a crash, or a conflict), and the loop goes on
        hook.autoresearch_experiment_logstart(experiment=exp)
        cause = Cause.CONFLICT if isinstance(exc, ConflictError) else Cause.PATCH_FAILED
        exp.runs.append(RunResult(None, 0.0, "", cause=cause, message=str(exc)))
        return False
    hook.autoresearch_experiment_logstart(experiment=exp)
    return True


def measure(exp) -> None:
    """Run the workload, again while ``autoresearch_experiment_rerun`` asks for it (with -n > 1 the
    runs after the first are the experiment's ``spread``: several at once, counted in seed order)."""
    from autoresearch import smoke

    hook = exp.session.config.hook
    seconds = smoke.first(exp, call)  # a short run first (smoke_steps, smoke_budget); None: it failed, recorded
    if seconds is None:
        return
    spread = getattr(exp, "spread", None)  # with -n > 1 (plugins/workers.py): the next runs on free workers at once
    while True:
        run = call(exp)
        exp.runs.append(replace(run, smoke_seconds=seconds) if seconds and not exp.runs else run)
        if spread is not None and exp.runs[-1].ok:
            return spread(exp, lambda runs: hook.autoresearch_experiment_rerun(experiment=exp, runs=runs))
        if not exp.runs[-1].ok or not hook.autoresearch_experiment_rerun(experiment=exp, runs=tuple(exp.runs)):
            return


def decide(exp) -> Report:
    """The verdict against the tip as it is now, then the report and the commit point."""
    session = exp.session
    if getattr(exp, "stale", ""):  # schedule = "rounds": a winner made stale by another's keep, tried twice
        return finish(exp, Verdict(Status.DISCARD, exp.stale))
    verdict = session.config.hook.autoresearch_make_verdict(
        experiment=exp, metrics=exp.metrics, result=exp.runs[-1], runs=tuple(exp.runs), tip=session.sample(session.tip))
    return finish(exp, verdict)


def interrupted(exp, exc: BaseException) -> None:
    """An experiment stopped before its commit point: recorded as interrupted; it runs again on resume."""
    if exp.finished:
        return
    what = STOPS.get(type(exc), "the session's stop")
    exp.runs.append(RunResult(None, time.time() - exp.started, str(exp.log_path), seed=exp.seed,
                              cause=Cause.INTERRUPTED, message=f"interrupted by {what} before the run finished"))
    finish(exp, Verdict(Status.INTERRUPTED, f"interrupted by {what}"))


def call(exp) -> RunResult:
    """One run of the workload, its metrics read from its log, and a cause if it gave no result."""
    hook = exp.session.config.hook
    result = hook.autoresearch_experiment_run(experiment=exp)
    check_protected(exp)  # before and after every run: a workload that edits them invalidates its result
    metrics: dict[str, float] = {}
    for found in reversed(hook.autoresearch_parse_metrics(experiment=exp, log_path=Path(result.log_path))):
        metrics.update(found or {})
    if result.evaluated is not None:  # a protected evaluator measured the run: its numbers replace the
        for name, value in result.evaluated.items():  # workload's (kept as reported.NAME), the metric too
            if name in metrics:
                metrics[f"reported.{name}"] = metrics[name]
            metrics[name] = value
        if exp.session.config.get("metric") not in result.evaluated:
            metrics.pop(exp.session.config.get("metric"), None)
    from autoresearch.metrics import DEFAULT_PATTERN

    config = exp.session.config
    pattern = config.get("metric_pattern")
    return classify(replace(result, metrics=metrics), config.get("metric"),
                    pattern if pattern and pattern != DEFAULT_PATTERN else None)


def finish(exp, verdict: Verdict) -> Report:
    """From the verdict to the teardown, as one step no stop cuts in two."""
    session, hook = exp.session, exp.session.config.hook
    with interrupts.critical():
        report = hook.autoresearch_make_report(experiment=exp, verdict=verdict)
        session.record_done(report)
        exp.finished = True
        hook.autoresearch_experiment_logreport(report=report)
        hook.autoresearch_experiment_teardown(experiment=exp, report=report)
        session.record_logged(report)
    return report


@hookimpl(trylast=True)
def autoresearch_make_report(experiment, verdict: Verdict) -> Report:
    exp, config = experiment, experiment.session.config
    h = exp.hypothesis
    runs = tuple(exp.runs)
    last = runs[-1] if runs else RunResult(None, 0.0, "")
    failed = next((r for r in reversed(runs) if not r.ok), None)
    ended_badly = verdict.status in (Status.CRASH, Status.INTERRUPTED) or (failed is not None and failed.cause == Cause.PRUNED)
    return Report(
        seq=exp.seq, tag=exp.session.tag, nodeid=exp.nodeid, name=exp.name, key=h.key if h else "",
        description=exp.description, hypothesis=h.hypothesis if h else "the unmodified baseline",
        status=verdict.status, reason=verdict.reason + overran(runs), metric=config.get("metric"), direction=config.get("direction"),
        metrics=exp.metrics, baseline_metrics=exp.baseline_metrics, expect=h.expect if h else (),
        changes=tuple(exp.patch.changes) if exp.patch else (),
        patch_kinds=patch_kinds(h),
        commit=exp.commit, baseline_commit=exp.base_commit, lines_added=exp.lines_added,
        lines_removed=exp.lines_removed, started=exp.started, duration=sum(r.duration for r in runs),
        log_path=last.log_path, returncode=last.returncode,
        cause=(failed.cause if failed else "") if ended_badly else "",
        root_cause=((failed.message if failed else verdict.reason) if ended_badly else ""),
        log_tail=log_tail(last.log_path) if ended_badly and last.log_path else "", runs=runs,
        sigma=verdict.sigma, z=verdict.z, beyond_noise=verdict.beyond_noise, outliers=verdict.outliers)


def overran(runs) -> str:
    """A note for the reason when a run took longer than its budget and the slack (every record
    carries the reason; each run's own ``overrun`` is in the ledger)."""
    worst = max((r.overrun for r in runs), default=0.0)
    return f" (a run overran its time budget by {worst:.0f}s)" if worst > 0 else ""


# -------------------------------------------------------------------------------------------
# The core's own phases, and fallbacks for a session without the git or verdict plugins


def content_id(texts: dict[str, str]) -> str:
    """Without git, a version of the editable files is named by its content, as a commit would be."""
    digest = hashlib.sha1()
    for name in sorted(texts):
        digest.update(f"{name}\0{texts[name]}\0".encode("utf-8", errors="surrogateescape"))
    return digest.hexdigest()


@hookimpl(trylast=True)
def autoresearch_sessionstart(session) -> None:
    """Without the git plugin, experiments run in a scratch copy of the project."""
    if session.workdir is None:
        from autoresearch.collect import editable_texts

        work = session.run_dir / "workdir"
        if not work.exists():
            state = session.config.state_dir.resolve()
            shutil.copytree(session.config.rootdir, work, symlinks=True,
                            ignore=lambda d, names: [n for n in names if n == ".git" or Path(d, n).resolve() == state])
        if session.workers > 1:
            raise UsageError("workers > 1 needs git (each worker has a worktree of its own): drop -p no:git, "
                             "or run with -n 1")
        session.workdir, session.scratch = work, True
        session.workdirs = [work]
        session.tip = content_id(editable_texts(session.config, work))


def check_protected(experiment) -> None:
    """The protected files as they were when the run started, or a stop that says which changed."""
    session = experiment.session
    now = session.protected_digest(experiment.workdir)
    changed = [name for name, digest in now.items() if session.protected_hashes.get(name, digest) != digest]
    if changed:
        raise UsageError(f"protected file {changed[0]} changed since the run started (in {experiment.workdir}); "
                         "a workload must not change it: fix that, then resume with --resume (the experiment "
                         "runs again from a clean worktree)")


@hookimpl
def autoresearch_experiment_setup(experiment) -> None:
    """Verify the protected files, then apply the patch to the workdir."""
    config = experiment.session.config
    check_protected(experiment)
    if experiment.hypothesis is None:
        return
    from autoresearch.collect import editable_texts
    from autoresearch.patching import apply_patch

    texts = editable_texts(config, experiment.workdir)
    try:
        experiment.patch = apply_patch(experiment.hypothesis, texts, config.editable, config.protected,
                                       config.get("command"))
    except PatchError as exc:  # the branch moved on since collection
        kept = [r.name for r in experiment.session.history if r.status == Status.KEEP and not r.is_baseline]
        raise ConflictError(f"conflicts with kept {kept[-1] if kept else 'changes'}: the patch does not apply "
                            f"to the current tip ({exc})") from None
    for name, text in experiment.patch.after.items():
        if text != texts.get(name):  # a file the patch made (autoresearch.args.toml) is new
            (experiment.workdir / name).write_bytes(text.encode())  # every byte as read
    experiment.commit = content_id(experiment.patch.after)  # the git plugin, if active, names its commit instead


@hookimpl(trylast=True)
def autoresearch_make_verdict(experiment, metrics: dict[str, float], runs, tip) -> Verdict:
    """Fallback when the verdict plugin is blocked: keep whatever beats its baseline and the tip
    (a run without a result is judged by the verdict plugin's one crash rule all the same)."""
    metric, direction = experiment.session.config.get("metric"), experiment.session.config.get("direction")
    failed = failed_verdict(runs)
    if failed is not None:
        return failed
    if experiment.hypothesis is None:
        return Verdict(Status.KEEP, "baseline")
    value = metrics[metric]
    targets = [v for v in (experiment.baseline.mean(metric), tip.mean(metric)) if v is not None]
    ok = all(better(value, t, direction) for t in targets)
    return Verdict(Status.KEEP if ok else Status.DISCARD, "better" if ok else "not better")


@hookimpl(trylast=True)
def autoresearch_experiment_teardown(experiment, report: Report) -> None:
    """Without git, a discarded patch is undone by writing the files back."""
    if report.status != Status.KEEP and experiment.patch and experiment.session.scratch:
        for name, text in experiment.patch.before.items():
            (experiment.workdir / name).write_bytes(text.encode())  # every byte as read
