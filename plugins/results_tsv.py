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
import os
import re

from pathlib import Path

from autoresearch import hookimpl
from autoresearch.config import inside
from autoresearch.reports import Report
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
    crash = report.status == "crash" or report.value is None
    value = 0.0 if crash else report.value
    memory = 0.0 if crash else round(report.metrics.get(memory_metric, 0.0) / 1024, 1)
    return f"{report.commit[:7]}\t{value:.6f}\t{memory:.1f}\t{report.status}\t{clean(report.description)}"


def render(metric: str, reports: list[Report], memory_metric: str = "peak_vram_mb") -> str:
    rows = [row(r, memory_metric) for r in sorted(reports, key=lambda r: r.seq) if r.status in ("keep", "discard", "crash")]
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription\n" + "".join(f"{r}\n" for r in rows)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ResultsTSV:
    def __init__(self, config) -> None:
        self.config = config
        self.session = None

    @property
    def mirror(self) -> Path:
        return self.config.rootdir / self.config.get("results_path")

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session
        self.flush()  # a resumed run repairs both files from the ledger

    @hookimpl
    def autoresearch_experiment_logreport(self, report: Report) -> None:
        if report.status != "interrupted":  # not a result: the hypothesis runs again on resume
            self.flush()

    def flush(self) -> None:
        assert self.session is not None
        reports = [r for r in self.session.history if r.status != "interrupted"]
        run_dir, memory = self.session.run_dir, self.config.get("memory_metric")
        atomic_write(run_dir / "results.jsonl", "".join(json.dumps(sidecar_entry(r, memory), default=str) + "\n"
                                                        for r in reports))
        text = render(self.config.get("metric"), reports, memory)
        atomic_write(run_dir / "results.tsv", text)
        atomic_write(self.mirror, text)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(ResultsTSV(config), "results_tsv-writer")



