"""The run protocol: the baseline first, then each hypothesis through setup -> run -> verdict ->
log -> teardown, under a lock, with Ctrl-C and SIGTERM turned into a clean, recorded stop.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

from autoresearch.errors import PatchError, UsageError
from autoresearch.execute import diagnose, log_tail, timeout
from autoresearch.expect import evaluate
from autoresearch.model import Hypothesis
from autoresearch.reports import Report, RunResult, Verdict
from autoresearch.session import Experiment, Session


class Terminated(BaseException):
    """Raised in the runner by SIGTERM, so that cleanup runs as for Ctrl-C."""


class Lock:
    """One runner per repository: an flock the kernel releases even after SIGKILL."""

    def __init__(self, path: Path, tag: str) -> None:
        self.path, self.tag, self.fd = path, tag, -1

    def __enter__(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.path.read_text().strip() or "unknown"
            os.close(self.fd)
            raise UsageError(f"another autoresearch run holds {self.path} ({holder}); wait for it to finish "
                             "or stop it first") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()}, tag {self.tag}, since {dt.datetime.now():%Y-%m-%d %H:%M:%S}".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)


def run_experiment(session: Session, seq: int, hypothesis: Hypothesis | None) -> Report:
    hook = session.config.hook
    exp = Experiment(session, seq, hypothesis)
    result: RunResult | None = None
    metrics: dict[str, float] = {}
    try:
        session.append_ledger({"event": "start", "seq": seq, "key": hypothesis.key if hypothesis else "",
                               "nodeid": exp.nodeid, "time": time.time()})
        try:
            if exp.base_error:
                raise PatchError(exp.base_error)
            hook.autoresearch_experiment_setup(experiment=exp)
        except PatchError as exc:  # nothing to run: recorded as a crash, and the loop goes on
            hook.autoresearch_experiment_logstart(experiment=exp)
            result = RunResult(returncode=None, duration=0.0, log_path="")
            return finish(exp, result, {}, Verdict("crash", f"crash: {exc}"), root_cause=str(exc))
        hook.autoresearch_experiment_logstart(experiment=exp)
        result = hook.autoresearch_experiment_run(experiment=exp)
        assert result is not None
        for found in reversed(hook.autoresearch_parse_metrics(experiment=exp, log_path=Path(result.log_path))):
            metrics.update(found or {})
        verdict = hook.autoresearch_make_verdict(experiment=exp, metrics=metrics, result=result)
        return finish(exp, result, metrics, verdict)
    except (KeyboardInterrupt, Terminated) as exc:
        result = RunResult(returncode=None, duration=time.time() - exp.started,
                           log_path=str(exp.log_path), interrupted=True)
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT (Ctrl-C)"
        finish(exp, result, metrics, Verdict("interrupted", f"interrupted by {name}"),
               root_cause=f"interrupted by {name} before the run finished")
        raise


def finish(exp: Experiment, result: RunResult, metrics: dict[str, float], verdict: Verdict,
           root_cause: str | None = None) -> Report:
    session, config = exp.session, exp.session.config
    metric = config.get("metric")
    h = exp.hypothesis
    status = verdict.status
    if status == "crash" and root_cause is None:
        root_cause = diagnose(result, metric, metrics, timeout(config))
    if status == "keep" and h is not None and exp.base_commit and session.tip and exp.base_commit != session.tip:
        tip_value = session.metrics_of(session.tip).get(metric)
        value = metrics.get(metric)
        if tip_value is not None and value is not None and not (
                value < tip_value if config.get("direction") == "minimize" else value > tip_value):
            status = "discard"
            verdict = Verdict("discard", f"discard: better than its baseline {h.baseline} but not than the "
                                         f"branch tip ({value:.6f} vs {tip_value:.6f})")
    expectation, details = evaluate(h.expect, metrics, exp.baseline_metrics) if h else (None, ())
    report = Report(
        seq=exp.seq, tag=session.tag, nodeid=exp.nodeid, name=exp.name, key=h.key if h else "",
        description=exp.description, hypothesis=h.hypothesis if h else "the unmodified baseline",
        status=status, reason=verdict.reason, metric=metric, direction=config.get("direction"),
        metrics=dict(metrics), baseline_metrics=dict(exp.baseline_metrics), expectation=expectation,
        expectation_details=details, expect=h.expect if h else (),
        changes=tuple(exp.patch.changes) if exp.patch else (),
        patch_kinds=tuple(k for k, v in (("set", h.set), ("replace", h.replace), ("diff", h.diff)) if v) if h else (),
        commit=exp.commit, baseline_commit=exp.base_commit, lines_added=exp.lines_added,
        lines_removed=exp.lines_removed, started=exp.started, duration=result.duration,
        log_path=result.log_path, returncode=result.returncode, root_cause=root_cause or "",
        log_tail=log_tail(result.log_path) if status in ("crash", "interrupted") and result.log_path else "",
    )
    config.hook.autoresearch_experiment_logreport(report=report)
    session.history.append(report)
    config.hook.autoresearch_experiment_teardown(experiment=exp, report=report)
    session.append_ledger({"event": "done", "report": report.to_dict(), "tip": session.tip})
    return report


def iterate(session: Session) -> Iterator[Hypothesis]:
    """The collected hypotheses not yet run, then (with --watch) new ones as they appear."""
    done = session.done_keys()
    pending = session.pending["key"] if session.pending else None
    first = [h for h in session.items if h.key == pending]  # what a killed process left unfinished
    for h in first + [h for h in session.items if h.key != pending]:
        if h.key not in done:
            yield h
            done.add(h.key)
    if not session.config.getoption("watch"):
        return
    from autoresearch.watch import watch

    yield from watch(session, done)


def run_session(session: Session) -> int:
    """Baseline first, then every hypothesis; returns the exit code."""
    from autoresearch.reports import ExitCode

    if not session.baseline_done:
        report = run_experiment(session, session.seq_for(""), None)
        if report.status != "keep":
            session.shouldstop = (f"the baseline crashed ({report.root_cause}); if the cause is outside train.py "
                                  "(data, environment), fix it and continue with --resume; if train.py itself is "
                                  "broken, commit a fix and start a new run with --tag NAME")
            return ExitCode.STOPPED
    for h in iterate(session):
        report = run_experiment(session, session.seq_for(h.key), h)
        if session.shouldstop:
            return ExitCode.STOPPED
        if report.status == "crash" and session.config.getoption("exitfirst"):
            session.shouldstop = f"-x: stopped at the first crash ({report.nodeid}: {report.root_cause})"
            return ExitCode.STOPPED
    return ExitCode.OK


def install_sigterm() -> Any:
    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    return signal.signal(signal.SIGTERM, on_term)
