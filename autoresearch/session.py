"""The session's state: the run's tag and folder, what has run (read from the ledger), what runs
next, and the experiment in progress. The lifecycle is main.py's; the protocol is protocol.py's.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from autoresearch.errors import PatchError, UsageError
from autoresearch.history import Index
from autoresearch.ledger import Ledger
from autoresearch.model import Hypothesis
from autoresearch.names import COMMIT, slug
from autoresearch.reports import MEASURED, Report, RunResult, Sample, Status, mean_metrics

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def default_tag() -> str:
    """The seed's run tag: today's date, as in ``nov22``."""
    return dt.date.today().strftime("%b%d").lower()


#: what ``--rerun`` may name
RERUN = ("crashed", "inconclusive", "interrupted")


def reruns(report: Report, words: tuple[str, ...]) -> bool:
    """Whether ``--rerun WORDS`` runs this finished experiment again (an interrupted one always
    runs again on --resume: it is no result)."""
    return (("crashed" in words and report.status == Status.CRASH)
            or ("inconclusive" in words and report.expectation == "inconclusive"))


def check_tag(tag: str) -> str:
    if not TAG.fullmatch(tag) or tag.endswith((".", ".lock")) or ".." in tag:
        raise UsageError(f"--tag {tag!r}: a tag is letters, digits, '.', '_' and '-', starting with a letter "
                         "or digit (it names the branch autoresearch/TAG)")
    return tag


class Experiment:
    """One experiment in progress; plugins read and fill in its fields during the protocol."""

    def __init__(self, session: Session, seq: int, hypothesis: Hypothesis | None) -> None:
        self.session = session
        self.seq = seq
        self.hypothesis = hypothesis
        self.nodeid = hypothesis.nodeid if hypothesis else "baseline"
        self.name = hypothesis.name if hypothesis else "baseline"
        self.description = hypothesis.description if hypothesis else "baseline"
        #: names this experiment's log files and its ref: ``003-lr_up``
        self.label = f"{seq:03d}-{slug(self.name)}"
        self.worker = 0  # which worker runs it (the run loop sets it)
        self.workdir: Path = session.workdir  # type: ignore[assignment]
        self.base_error = ""
        try:
            self.base_commit = session.resolve_base(hypothesis)
        except PatchError as exc:
            self.base_commit, self.base_error = session.tip, str(exc)
        self.commit = self.base_commit
        self.patch: Any = None  # the PatchResult, once setup applied it
        self.started = time.time()
        self.runs: list[RunResult] = []  # every run of the workload so far
        self.finished = False  # True once its report is in the ledger
        self.cancelled = threading.Event()  # set to stop its run at once (a run loop's decision)
        self.smoke: Any = None  # a smoke run's budget (autoresearch.smoke.Limits) while one runs

    @property
    def baseline(self) -> Sample:
        """Every run of the commit it builds on, measured so far (with several workers, its
        baseline may be decided while it runs: this is read when it is needed)."""
        return self.session.sample(self.base_commit)

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return self.baseline.metrics

    @property
    def metrics(self) -> dict[str, float]:
        """The experiment's metrics: the mean over its successful runs."""
        return mean_metrics(r.metrics for r in self.runs if r.ok)

    def should_stop(self) -> bool:
        """Whether its run must end now: the session is stopping, or it was cancelled."""
        return self.session.stopping.is_set() or self.cancelled.is_set()

    @property
    def seed(self) -> int:
        """The seed of the next run: 0 for a commit's first run, then 1, 2, ..."""
        return self.session.count_runs(self.commit) + len(self.runs)

    @property
    def log_path(self) -> Path:
        """The log of the next run: ``NNN-name.log``, then ``NNN-name.1.log``, ... for repeats."""
        n = len(self.runs)
        if self.smoke is not None:  # the smoke run before the first (autoresearch/smoke.py)
            return self.session.run_dir / "logs" / f"{self.label}.smoke.log"
        return self.session.run_dir / "logs" / f"{self.label}{f'.{n}' if n else ''}.log"

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
        self.tag: str = check_tag(config.getoption("tag") or default_tag())
        self.resume: bool = bool(config.getoption("resume"))
        self.paths: list[Path] = []
        self.branch = ""
        self.workdir: Path | None = None  # the first worker's folder (the git plugin's worktree)
        self.workdirs: list[Path] = []  # one folder per worker
        self.workers = 1  # experiments run at once (the workers setting)
        self.devices: list[str] = []  # GPUs, one per worker (CUDA_VISIBLE_DEVICES)
        self.scratch = False  # True when experiments run in a scratch copy (no git)
        self.tip = ""  # the commit experiments build on: the last kept one
        self.initial_commit = ""
        self.history: list[Report] = []  # finished experiments, by number (read from the ledger)
        self._index: tuple[list[Report], Index] | None = None  # the history's index, and the list it indexes
        self._order: tuple[tuple[int, int, int], list[Hypothesis]] | None = None  # the queue's order, and what it was made of
        self._cursor = 0  # the queue's first hypothesis not yet looked at
        self.pending: list[dict[str, Any]] = []  # experiments the last process did not finish (by number)
        self.unlogged: list[Report] = []  # finished by the last process, not recorded everywhere
        self.protected_hashes: dict[str, str | None] = {}
        self.shouldstop: str = ""  # set to a reason to stop after the current experiment
        self.stopping = threading.Event()  # set when the session stops: workers' runs end at once
        self.dispatched: set[str] = set()  # hypothesis keys handed to the loop in this process
        self.deselected = 0  # hypotheses -k left out
        self.numbered: set[int] = set()  # experiment numbers given out in this process
        self.started = time.time()
        self.sandbox: Any = None  # the isolation.Level every run of the workload gets (set at sessionstart)
        self.evaluator: bytes | None = None  # the protected evaluator's files (a tar), with the evaluate setting
        self.trees: dict = {}  # the files of recent commits (runfolder.Tree), for the runs' folders
        self.evaluator_dir: Path | None = None  # the evaluator's folder, kept for the session in a confined sandbox
        self.pins: dict[str, str | None] = {}  # the files this session pinned (isolation.pinned_files)

    @classmethod
    def open_existing(cls, config: Any, tag: str | None = None) -> Session:
        """A finished or stopped run (default: the latest), read from its ledger: for status, report."""
        current = config.state_dir / "current"
        tag = tag or (current.read_text(errors="replace").strip() if current.is_file() else None)
        if not tag:
            raise UsageError(f"no runs yet in {config.state_dir} (start one with autoresearch run)")
        session = cls(config)
        session.tag = check_tag(tag)
        if not session.ledger.exists():
            runs = sorted(p.parent.name for p in (config.state_dir / "runs").glob("*/ledger.jsonl"))
            raise UsageError(f"--tag {tag}: no run tagged {tag!r} in {config.state_dir} (runs here: {', '.join(runs) or 'none'})")
        try:
            session.load()
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise UsageError(f"{session.ledger.path}: an entry autoresearch did not write ({type(exc).__name__}: "
                             f"{str(exc)[:80]}); the run's record is damaged") from None
        return session

    # -- state on disk ---------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.config.state_dir / "runs" / self.tag

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.run_dir / "ledger.jsonl")

    def load(self) -> None:
        """Read the ledger of a resumed run: finished reports, the tip, and what was in flight."""
        state = self.ledger.replay()
        self.history, self.pending, self.tip = state.history, state.pending, state.tip
        self.unlogged = state.unlogged
        self.dispatched = self.done_keys()
        self.initial_commit, self.protected_hashes = state.initial_commit, state.protected

    def record_opening(self) -> None:
        """The run's first ledger line: the commit it starts from and the protected files' hashes."""
        self.initial_commit = self.tip
        self.protected_hashes = self.protected_digest()
        self.ledger.append({"event": "session", "format": 2, "initial_commit": self.tip,
                            "protected": self.protected_hashes})

    def record_start(self, exp: Experiment) -> None:
        """Not fsynced: its "done" line's fsync takes it to the disk. Lost with the machine's power
        before that, the experiment is as one that never started: it runs again, under its number."""
        self.ledger.append({"event": "start", "seq": exp.seq, "key": exp.hypothesis.key if exp.hypothesis else "",
                            "nodeid": exp.nodeid, "time": time.time()}, sync=False)

    def record_done(self, report: Report) -> None:
        """The commit point of an experiment: its report and the tip it leaves, in the ledger."""
        tip = report.commit if report.status == Status.KEEP and report.commit else self.tip
        self.ledger.append({"event": "done", "report": report.to_dict(), "tip": tip})
        self.tip = tip
        index = self.index
        if report.seq > index.last_seq:  # the usual case: after every report so far, added in place
            index.add(report, self.history)
        else:  # an interrupted experiment's report replaced (--resume): the index is made anew
            self.history = sorted([r for r in self.history if r.seq != report.seq] + [report], key=lambda r: r.seq)

    def record_logged(self, report: Report) -> None:
        """Every plugin has recorded the experiment: a resumed run need not record it again. Not
        fsynced: the next line's fsync (or the session's end) takes it to the disk, and a line lost
        with the machine's power only means a resumed run records the experiment once more."""
        self.ledger.append({"event": "logged", "seq": report.seq}, sync=False)

    @property
    def index(self) -> Index:
        """The history's :class:`autoresearch.history.Index`, made anew whenever the history was
        replaced or changed other than by :meth:`record_done`."""
        cached = self._index
        if cached is None or cached[0] is not self.history or cached[1].count != len(self.history):
            cached = self._index = (self.history, Index(self.history))
        return cached[1]

    def record_pid(self, pid: int) -> None:
        (self.run_dir / "workload.pid").write_text(str(pid))

    # -- what has run ----------------------------------------------------------------------

    def done_keys(self) -> set[str]:
        """The hypotheses this run has finished, which do not run again: all but those whose latest
        result ``--rerun`` names (crashed, inconclusive, interrupted)."""
        words = getattr(self.config, "getoption", lambda name: None)("rerun") or ()
        index = self.index
        if words:
            return {key for key, r in index.latest_by_key.items() if not reruns(r, words)}
        return set(index.latest_by_key)

    @property
    def baseline_done(self) -> bool:
        """The unmodified code has run successfully once (a crashed baseline runs again on resume)."""
        return self.index.baseline_kept

    def reports_of(self, commit: str) -> list[Report]:
        """The reports of a commit (a short id: of the commits it begins), by number."""
        return list(self.index.reports_of(commit, self.history))

    def count_runs(self, commit: str) -> int:
        return sum(len(r.runs) for r in self.reports_of(commit))

    def sample(self, commit: str) -> Sample:
        """Every successful run of a commit in this run: what it is compared with."""
        runs: list[dict[str, float]] = []
        for r in self.reports_of(commit):
            if r.status in MEASURED:
                runs += [x.metrics for x in r.runs if x.ok] if r.runs else [r.metrics]
        return Sample(commit, tuple(runs))

    def noise(self, metric: str, extra: tuple[float, ...] = ()) -> tuple[float | None, int]:
        """(sigma, degrees of freedom) of `metric`, pooled over every commit that ran more than once
        in this run, and `extra` (the values of an experiment still running)."""
        from autoresearch.stats import pooled_over

        return pooled_over(self.history, metric, extra, self.config.get("noise_window", 40),
                           groups=self.index.repeated(metric, self.history))

    def groups(self, metric: str, extra: tuple[float, ...] | list[float] = ()) -> list[list[float]]:
        """What :func:`autoresearch.drift.groups` makes of the history and `extra`, less the commits
        run once (which count for nothing in σ or the robust σ), without a walk of the history."""
        return [*self.index.repeated(metric, self.history), list(extra)]

    def experiment(self, hypothesis: Hypothesis | None) -> Experiment:
        return Experiment(self, self.seq_for(hypothesis.key if hypothesis else ""), hypothesis)

    def seq_for(self, key: str) -> int:
        """The experiment's number: one a killed runner left in flight keeps its number."""
        for entry in self.pending:
            if entry["key"] == key:
                self.pending.remove(entry)
                self.numbered.add(entry["seq"])
                return entry["seq"]
        seq = max(self.index.last_seq, max((e["seq"] for e in self.pending), default=-1),
                  max(self.numbered, default=-1)) + 1
        self.numbered.add(seq)
        return seq

    def next_item(self) -> Hypothesis | None:
        """The next hypothesis to run, or None for now: those a killed runner left in flight
        first (in their order), then the collected ones not yet run. Never blocks."""
        made = (id(self.items), len(self.items), len(self.pending))
        if self._order is None or self._order[0] != made:  # new hypotheses, or one in flight dispatched
            first = {e["key"]: e["seq"] for e in self.pending}
            self._order = made, sorted(self.items, key=lambda h: (h.key not in first, first.get(h.key, 0)))
            self._cursor = 0
        order = self._order[1]
        while self._cursor < len(order):  # those before the cursor are dispatched: never looked at again
            h = order[self._cursor]
            self._cursor += 1
            if h.key not in self.dispatched:
                self.dispatched.add(h.key)
                return h
        return None

    def more(self) -> bool:
        """Ask ``autoresearch_queue_empty`` for more (``--watch`` waits for new files); False for none."""
        more = [h for h in self.config.hook.autoresearch_queue_empty(session=self) or []
                if h.key not in self.dispatched]
        self.items += more
        return bool(more)

    def queue(self) -> Iterator[Hypothesis]:
        """What runs next, one at a time: :meth:`next_item`, then :meth:`more` when none is left."""
        while True:
            h = self.next_item()
            if h is None and not self.more():
                return
            if h is not None:
                yield h

    def resolve_base(self, h: Hypothesis | None) -> str:
        """The commit a hypothesis builds on."""
        if h is None or h.baseline == "best" or not self.tip:
            return self.tip
        if h.baseline == "initial":
            return self.initial_commit
        named = self.index.latest_by_name.get(h.baseline)
        if named is not None and named.status == Status.CRASH:
            raise PatchError(f"its baseline {h.baseline!r} crashed ({named.root_cause}): nothing to build on")
        if named is not None:
            return named.commit
        if COMMIT.fullmatch(h.baseline):
            return h.baseline
        raise PatchError(f"its baseline {h.baseline!r} has not run in this run (was it deselected?)")

    def protected_digest(self, workdir: Path | None = None) -> dict[str, str | None]:
        workdir = workdir or self.workdir
        assert workdir is not None
        out: dict[str, str | None] = {}
        for name in self.config.protected:
            path = workdir / name
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return out
