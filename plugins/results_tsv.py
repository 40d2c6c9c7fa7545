"""results_tsv: the seed's results.tsv, exactly its schema, and a JSON Lines sidecar with the rest.

    commit  val_bpb  memory_gb  status  description

The sidecar (``results.jsonl`` beside the run's copy) holds every metric, every run (``runs``; the
metric's value in each as ``values``, their number ``n``, ``mean``, the pooled noise ``sigma``, the
standard error of the mean ``sem``, the improvement in standard errors ``z``), durations,
the expectation's outcome, the hypothesis id and the log path. Both render from the session's
history (the ledger): whole when a session starts (a resumed run repairs them: a runner killed
between two writes never loses or repeats a row) and whenever a result is not simply the newest
row; after an experiment, its row is appended, one write to each file, so the cost of an
experiment does not grow with the run. A whole file is replaced atomically (written aside, then
renamed), and an append that fails (a full disk) is cut back, so neither leaves a torn row; a
file that is not as this process left it (edited, removed) is written whole again.
"""
from __future__ import annotations

import json
import os
import re

from pathlib import Path

from autoresearch import hookimpl
from autoresearch.config import inside
from autoresearch.ledger import atomic_write
from autoresearch.reports import DECIDED, Report, Status, results
from autoresearch.reports import read_results  # noqa: F401  (core's reader of this file, for publish too)
from autoresearch.reports import record as sidecar_entry  # one record, for report --json too


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("results_path", check=inside, default="results.tsv",
                      help="where results.tsv is kept, relative to the project root (untracked)")
    parser.addsetting("memory_metric", default="peak_vram_mb",
                      help="the metric, in MB, that results.tsv's memory_gb column shows (in GB)")


# tabs, and every character that some reader treats as a line break
BREAKS = re.compile("[\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def clean(text: str) -> str:
    """One TSV field: tabs and line breaks become spaces."""
    return BREAKS.sub(" ", text)


def row(report: Report, memory_metric: str = "peak_vram_mb") -> str:
    crash = report.status == Status.CRASH or report.value is None
    value = 0.0 if crash else report.value
    memory = 0.0 if crash else round(report.metrics.get(memory_metric, 0.0) / 1024, 1)
    return f"{report.commit[:7]}\t{value:.6f}\t{memory:.1f}\t{report.status}\t{clean(report.description)}"


def render(metric: str, reports: list[Report], memory_metric: str = "peak_vram_mb") -> str:
    rows = [row(r, memory_metric) for r in sorted(reports, key=lambda r: r.seq) if r.status in DECIDED]
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription\n" + "".join(f"{r}\n" for r in rows)


class ResultsTSV:
    def __init__(self, config) -> None:
        self.config = config
        self.session = None
        self.lines: dict[int, tuple[Report, str]] = {}  # seq -> (its report, its sidecar line): each rendered once
        self.last = -1  # the number of the last row written (-1: none)
        # each file as this process last left it: (size, inode, change time). A workload that rewrites one
        # (sandbox off) cannot set the change time back, so its edit is seen and the file written whole
        self.marks: dict[Path, tuple[int, int, int]] = {}
        self.flushes = 0  # whole renders, for the tests that bookkeeping does not grow with the run

    @property
    def mirror(self) -> Path:
        return self.config.rootdir / self.config.get("results_path")

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session
        self.flush()  # a resumed run repairs both files from the ledger

    @hookimpl
    def autoresearch_experiment_logreport(self, report: Report) -> None:
        if report.status == Status.INTERRUPTED:  # not a result: the hypothesis runs again on resume
            return
        history = self.session.history if self.session is not None else []
        if not (history and history[-1] is report and report.seq > self.last and self.append(report)):
            self.flush()

    def paths(self) -> tuple[Path, Path, Path]:
        run_dir = self.session.run_dir
        return run_dir / "results.jsonl", run_dir / "results.tsv", self.mirror

    def flush(self) -> None:
        """Both files (and the mirror) written whole from the history."""
        assert self.session is not None
        reports = results(self.session.history)
        memory = self.config.get("memory_metric")
        text = render(self.config.get("metric"), reports, memory)
        sidecar = "".join(self.line(r, memory) for r in reports)
        for path, body in zip(self.paths(), (sidecar, text, text)):
            atomic_write(path, body)
            self.marks[path] = mark(path)
        self.last = max((r.seq for r in reports), default=-1)
        self.flushes += 1

    def append(self, report: Report) -> bool:
        """The newest result's row appended to each file; False (nothing changed) when a file is not
        as this process left it, or an append failed: the caller writes them whole."""
        memory = self.config.get("memory_metric")
        tsv = f"{row(report, memory)}\n".encode()
        jsonl, *tables = self.paths()
        chunks = {jsonl: self.line(report, memory).encode(), **{path: tsv for path in tables}}  # the mirror once
        try:
            if any(mark(path) != self.marks.get(path) for path in chunks):
                return False
        except OSError:
            return False
        for path, chunk in chunks.items():
            if not append_exactly(path, chunk, self.marks[path][0]):
                return False
            try:
                self.marks[path] = mark(path)
            except OSError:
                return False
        self.last = report.seq
        return True

    def line(self, report: Report, memory: str) -> str:
        """The report's line of results.jsonl; a report is frozen, so the line is rendered once."""
        cached = self.lines.get(report.seq)
        if cached is None or cached[0] is not report:
            cached = self.lines[report.seq] = (report, json.dumps(sidecar_entry(report, memory), default=str) + "\n")
        return cached[1]


def mark(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_ino, st.st_ctime_ns


def append_exactly(path: Path, data: bytes, size: int) -> bool:
    """`data` at the end of a file of `size` bytes, in one write; on any failure the file is cut
    back to `size` (never a torn row) and False returned."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return False
    try:
        if os.write(fd, data) == len(data):
            return True
        os.ftruncate(fd, size)
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
    finally:
        os.close(fd)
    return False


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(ResultsTSV(config), "results_tsv-writer")



