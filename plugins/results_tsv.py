"""results_tsv: the seed's results.tsv, exactly its schema, and a JSON Lines sidecar with the rest.

    commit  val_bpb  memory_gb  status  description

The sidecar (``results.jsonl`` beside the run's copy) holds every metric, durations, the
expectation's outcome, the hypothesis id and the log path. results.tsv is rendered from it, so a
runner killed between the two never loses or repeats a row, and both files are replaced
atomically (written aside, then renamed): a full disk leaves the old file, never a torn row.
"""
from __future__ import annotations

import json
import os
import re

from pathlib import Path

from autoresearch import hookimpl
from autoresearch.reports import Report


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("results_path", default="results.tsv",
                      help="where results.tsv is kept, relative to the project root (untracked)")


# tabs, and every character that some reader treats as a line break
BREAKS = re.compile("[\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def clean(text: str) -> str:
    """One TSV field: tabs and line breaks become spaces."""
    return BREAKS.sub(" ", text)


def row(report: Report) -> str:
    crash = report.status == "crash" or report.value is None
    value = 0.0 if crash else report.value
    memory = 0.0 if crash else round(report.metrics.get("peak_vram_mb", 0.0) / 1024, 1)
    return f"{report.commit[:7]}\t{value:.6f}\t{memory:.1f}\t{report.status}\t{clean(report.description)}"


def render(metric: str, reports: list[Report]) -> str:
    rows = [row(r) for r in sorted(reports, key=lambda r: r.seq) if r.status in ("keep", "discard", "crash")]
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


def sidecar_entry(report: Report) -> dict:
    entry = report.to_dict()
    entry.pop("log_tail", None)
    entry["memory_gb"] = round(report.metrics.get("peak_vram_mb", 0.0) / 1024, 1)
    return entry


class ResultsTSV:
    def __init__(self, config) -> None:
        self.config = config
        self.entries: dict[int, dict] = {}
        self.run_dir: Path | None = None

    @property
    def mirror(self) -> Path:
        return self.config.rootdir / self.config.get("results_path")

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.run_dir = session.run_dir
        sidecar = self.run_dir / "results.jsonl"
        if sidecar.is_file():
            for line in sidecar.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.entries[entry["seq"]] = entry
        self.flush()  # a resumed run repairs results.tsv from the sidecar

    @hookimpl
    def autoresearch_experiment_logreport(self, report: Report) -> None:
        if report.status == "interrupted":
            return  # not a result: the hypothesis runs again when the run is resumed
        self.entries[report.seq] = sidecar_entry(report)
        self.flush()

    def flush(self) -> None:
        assert self.run_dir is not None
        ordered = [self.entries[k] for k in sorted(self.entries)]
        atomic_write(self.run_dir / "results.jsonl", "".join(json.dumps(e, default=str) + "\n" for e in ordered))
        text = render(self.config.get("metric"), [Report.from_dict(e) for e in ordered])
        atomic_write(self.run_dir / "results.tsv", text)
        atomic_write(self.mirror, text)


def read_results(path: Path) -> list[dict[str, str]]:
    """Parse a results.tsv back into rows, one dict per line keyed by the header."""
    lines = path.read_text().split("\n")[:-1]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(ResultsTSV(config), "results_tsv-writer")



