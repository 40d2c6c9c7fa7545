"""The session: the baseline first, then each hypothesis through setup -> run -> verdict -> log ->
teardown, with a ledger that lets a killed run resume without losing or repeating a result.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from autoresearch import hookimpl
from autoresearch.errors import PatchError, UsageError
from autoresearch.expect import evaluate
from autoresearch.model import Hypothesis
from autoresearch.patching import PatchResult, apply_patch
from autoresearch.reports import Report, RunResult, Verdict


TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Terminated(BaseException):
    """Raised in the runner by SIGTERM, so that cleanup runs as for Ctrl-C."""


def default_tag() -> str:
    """The seed's run tag: today's date, as in ``nov22``."""
    return dt.date.today().strftime("%b%d").lower()


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("--tag", default=None, help="run tag: the branch is autoresearch/TAG (default: today, e.g. "
                                                  f"{default_tag()})")
    parser.addoption("--resume", action="store_true", help="continue the run of an existing tag (--tag, default "
                                                         "the latest run) instead of starting a new one")
    parser.addoption("-x", "--exitfirst", action="store_true", help="stop at the first crash")
    parser.addoption("--watch", action="store_true",
                     help="after the collected hypotheses, keep watching PATHS and run each new or changed "
                          "hypothesis as it appears, until interrupted (the seed's LOOP FOREVER)")
    parser.addsetting("state_dir", default=".autoresearch",
                      help="folder (relative to the project root) for the run's worktree, logs and state; "
                           "git-ignored through .git/info/exclude")
    parser.addsetting("watch_interval", type="float", default=2.0, help="seconds between checks in --watch mode")


class Experiment:
    """One experiment in progress; plugins read and fill in its fields during the protocol."""

    def __init__(self, session: Session, seq: int, hypothesis: Hypothesis | None) -> None:
        self.session = session
        self.seq = seq
        self.hypothesis = hypothesis
        self.nodeid = hypothesis.nodeid if hypothesis else "baseline"
        self.name = hypothesis.name if hypothesis else "baseline"
        self.description = hypothesis.description if hypothesis else "baseline"
        slug = "".join(c if c.isalnum() else "-" for c in self.name)[:48].strip("-")
        self.log_path = session.run_dir / "logs" / f"{seq:03d}-{slug}.log"
        self.workdir: Path = session.workdir  # type: ignore[assignment]
        self.base_commit, self.baseline_metrics = session.resolve_base(hypothesis)
        self.commit = self.base_commit
        self.patch: PatchResult | None = None
        self.started = time.time()

    @property
    def lines_added(self) -> int:
        return self.patch.counts[0] if self.patch else 0

    @property
    def lines_removed(self) -> int:
        return self.patch.counts[1] if self.patch else 0


class Session:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.items: list[Hypothesis] = []
        self.tag: str = config.getoption("tag") or default_tag()
        if not TAG.fullmatch(self.tag):
            raise UsageError(f"--tag {self.tag!r}: a tag is letters, digits, '.', '_' and '-', starting "
                             "with a letter or digit (it names the branch autoresearch/TAG)")
        self.resume: bool = bool(config.getoption("resume"))
        self.paths: list[Path] = []
        self.branch = ""
        self.workdir: Path | None = None
        self.tip = ""  # the commit experiments build on (set by the git plugin)
        self.initial_commit = ""
        self.history: list[Report] = []
        self.pending: dict[str, Any] | None = None  # an experiment the last process did not finish
        self.protected_hashes: dict[str, str | None] = {}
        self.shouldstop: str = ""
        self.started = time.time()

    # -- state on disk ---------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.config.state_dir / "runs" / self.tag

    @property
    def ledger_path(self) -> Path:
        return self.run_dir / "ledger.jsonl"

    def load(self) -> None:
        """Read the ledger of a resumed run: finished reports, and what was in flight."""
        started: dict[int, dict[str, Any]] = {}
        for line in self.ledger_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a kill: that experiment runs again
            if entry["event"] == "start":
                started[entry["seq"]] = entry
            elif entry["event"] == "done":
                started.pop(entry["report"]["seq"], None)
                self.history = [r for r in self.history if r.seq != entry["report"]["seq"]]
                self.history.append(Report.from_dict(entry["report"]))
                self.tip = entry["tip"]
            elif entry["event"] == "session":
                self.initial_commit = entry.get("initial_commit", "")
                self.protected_hashes = entry.get("protected", {})
        self.pending = max(started.values(), key=lambda e: e["seq"]) if started else None

    def append_ledger(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, default=str) + "\n"
        with open(self.ledger_path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def record_pid(self, pid: int) -> None:
        (self.run_dir / "workload.pid").write_text(str(pid))

    # -- what has run ----------------------------------------------------------------------

    def done_keys(self) -> set[str]:
        return {r.key for r in self.history if r.status != "interrupted" and r.key}

    def metrics_of(self, commit: str) -> dict[str, float]:
        for r in reversed(self.history):
            if r.commit and commit and (r.commit.startswith(commit) or commit.startswith(r.commit)) and r.status != "crash":
                return dict(r.metrics)
        return {}

    @property
    def baseline_done(self) -> bool:
        return any(r.is_baseline and r.status == "keep" for r in self.history)

    def seq_for(self, key: str) -> int:
        """The experiment's number: an interrupted one keeps its number, so it is recorded once."""
        if self.pending is not None and self.pending["key"] == key:
            seq = self.pending["seq"]
            self.pending = None
            return seq
        used = [r.seq for r in self.history] + ([self.pending["seq"]] if self.pending else [])
        return max(used, default=-1) + 1

    def resolve_base(self, h: Hypothesis | None) -> tuple[str, dict[str, float]]:
        """The commit a hypothesis builds on and the metrics it is compared with."""
        if h is None or h.baseline == "best" or not self.tip:
            kept = [r for r in self.history if r.status == "keep"]
            return self.tip, (dict(kept[-1].metrics) if kept else {})
        if h.baseline == "initial":
            commit = self.initial_commit
        else:
            named = [r for r in self.history if r.name == h.baseline and r.commit]
            commit = named[-1].commit if named else h.baseline
            if not named and not any(c in "0123456789abcdef" for c in h.baseline[:1]):
                raise UsageError(f"{h.nodeid}: baseline {h.baseline!r} has not run yet in this run")
        return commit, self.metrics_of(commit)

    def protected_digest(self) -> dict[str, str | None]:
        assert self.workdir is not None
        out: dict[str, str | None] = {}
        for name in self.config.protected:
            path = self.workdir / name
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return out


# -------------------------------------------------------------------------------------------
# Core hook implementations (the git plugin wraps them when it is active)


@hookimpl(trylast=True)
def autoresearch_sessionstart(session: Session) -> None:
    """Without the git plugin, experiments run in a scratch copy of the project."""
    if session.workdir is None:
        work = session.run_dir / "workdir"
        if not work.exists():
            state = session.config.state_dir.resolve()
            shutil.copytree(session.config.rootdir, work, symlinks=True,
                            ignore=lambda d, names: [n for n in names if n == ".git" or Path(d, n).resolve() == state])
        session.workdir = work


@hookimpl
def autoresearch_experiment_setup(experiment: Experiment) -> None:
    """Verify the protected files, then apply the patch to the workdir."""
    session, config = experiment.session, experiment.session.config
    now = session.protected_digest()
    changed = [name for name, digest in now.items() if session.protected_hashes.get(name, digest) != digest]
    if changed:
        raise UsageError(f"protected file {changed[0]} changed since the run started (in {experiment.workdir}); "
                         f"restore it (git -C {experiment.workdir} checkout -- {changed[0]}) and resume with --resume")
    if experiment.hypothesis is None:
        return
    from autoresearch.collect import editable_texts

    texts = editable_texts(config, experiment.workdir)
    experiment.patch = apply_patch(experiment.hypothesis, texts, config.editable, config.protected)
    for name, text in experiment.patch.after.items():
        if text != texts[name]:
            (experiment.workdir / name).write_text(text)


@hookimpl(trylast=True)
def autoresearch_make_verdict(experiment: Experiment, metrics: dict[str, float], result: RunResult) -> Verdict:
    """Fallback when the verdict plugin is blocked: keep whatever is better."""
    metric = experiment.session.config.get("metric")
    if result.returncode != 0 or metric not in metrics:
        return Verdict("crash", "crash")
    if experiment.hypothesis is None:
        return Verdict("keep", "baseline")
    base = experiment.baseline_metrics.get(metric)
    better = base is None or (metrics[metric] < base if experiment.session.config.get("direction") == "minimize"
                              else metrics[metric] > base)
    return Verdict("keep" if better else "discard", "better" if better else "not better")


@hookimpl(trylast=True)
def autoresearch_experiment_teardown(experiment: Experiment, report: Report) -> None:
    """Without git, a discarded patch is undone by writing the files back."""
    if report.status != "keep" and experiment.patch and not experiment.session.tip:
        for name, text in experiment.patch.before.items():
            (experiment.workdir / name).write_text(text)


# -------------------------------------------------------------------------------------------
# The protocol


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
            hook.autoresearch_experiment_setup(experiment=exp)
        except PatchError as exc:  # the branch moved on since collection: the patch no longer applies
            hook.autoresearch_experiment_logstart(experiment=exp)
            result = RunResult(returncode=None, duration=0.0, log_path="")
            verdict = Verdict("crash", f"crash: patch does not apply to the current tip: {exc}")
            return finish(exp, result, {}, verdict, root_cause=f"patch does not apply: {exc}")
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
    from autoresearch.execute import diagnose, log_tail, timeout

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
            session.shouldstop = f"the baseline crashed ({report.root_cause}); fix it, then run again with --resume"
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


def echo(*parts: Any) -> None:
    print(*parts, file=sys.stderr)
