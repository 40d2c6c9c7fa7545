"""The session's state: the run's tag and folder, its ledger (which lets a killed run resume
without losing or repeating a result), the experiment in progress, and the core's fallback
hooks for runs without the git or verdict plugins. The protocol itself is in runner.py.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from autoresearch import hookimpl
from autoresearch.errors import PatchError, UsageError
from autoresearch.model import Hypothesis
from autoresearch.patching import PatchResult, apply_patch
from autoresearch.reports import Report, RunResult, Verdict


TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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
        self.base_error = ""
        try:
            self.base_commit, self.baseline_metrics = session.resolve_base(hypothesis)
        except PatchError as exc:
            self.base_commit, self.baseline_metrics, self.base_error = session.tip, {}, str(exc)
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
            if not named and not re.fullmatch(r"[0-9a-f]{7,40}", h.baseline):
                raise PatchError(f"its baseline {h.baseline!r} has not run in this run (was it deselected?)")
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
    try:
        experiment.patch = apply_patch(experiment.hypothesis, texts, config.editable, config.protected)
    except PatchError as exc:  # the branch moved on since collection
        raise PatchError(f"patch does not apply to the current tip: {exc}") from None
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
