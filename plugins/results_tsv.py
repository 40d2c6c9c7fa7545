"""results_tsv: the seed's results.tsv, exactly its schema, and a JSON Lines sidecar with the rest.

    commit  val_bpb  memory_gb  status  description

The sidecar (``results.jsonl`` beside the run's copy) holds every metric, every run (``runs``; the
metric's value in each as ``values``, their number ``n``, ``mean``, the pooled noise ``sigma``, the
standard error of the mean ``sem``, the improvement in standard errors ``z``), durations,
the expectation's outcome, the hypothesis id and the log path. Both render from the session's
history (the ledger), whole, after every experiment and when a run resumes: a runner killed
between two writes never loses or repeats a row, and both files are replaced atomically (written
aside, then renamed), so a full disk leaves the old file, never a torn row.
"""
from __future__ import annotations

import json
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

    @property
    def mirror(self) -> Path:
        return self.config.rootdir / self.config.get("results_path")

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session
        self.flush()  # a resumed run repairs both files from the ledger

    @hookimpl
    def autoresearch_experiment_logreport(self, report: Report) -> None:
        if report.status != Status.INTERRUPTED:  # not a result: the hypothesis runs again on resume
            self.flush()

    def flush(self) -> None:
        assert self.session is not None
        reports = results(self.session.history)
        run_dir, memory = self.session.run_dir, self.config.get("memory_metric")
        atomic_write(run_dir / "results.jsonl", "".join(self.line(r, memory) for r in reports))
        text = render(self.config.get("metric"), reports, memory)
        atomic_write(run_dir / "results.tsv", text)
        atomic_write(self.mirror, text)


    def line(self, report: Report, memory: str) -> str:
        """The report's line of results.jsonl; a report is frozen, so the line is rendered once."""
        cached = self.lines.get(report.seq)
        if cached is None or cached[0] is not report:
            cached = self.lines[report.seq] = (report, json.dumps(sidecar_entry(report, memory), default=str) + "\n")
        return cached[1]


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(ResultsTSV(config), "results_tsv-writer")



