"""``autoresearch show``: experiments × what each changed × what each measured × how it ended,
in one table (as ``dvc exp show``): text on a terminal, or ``--md``, ``--csv``, ``--json``.

Rows come from :mod:`autoresearch.compare`; everything shown is escaped
(:func:`autoresearch.reports.printable`): a run's record may come from an archive.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from autoresearch.compare import columns, fmt_metric, load, row, select, sort
from autoresearch.errors import UsageError
from autoresearch.reports import ExitCode, printable

WIDEST = 48  # characters of a text cell (a description, a code change) before it is cut with …


def main(config: Any) -> int:
    print(show(config), end="")
    return ExitCode.OK


def rows_of(config: Any) -> list[dict[str, Any]]:
    """The rows --tag/--all, -k, --status and --sort select, in order."""
    runs = load(config, config.getoption("tag"), config.getoption("all"))
    rows = [row(tag, r) for tag, reports in runs for r in reports]
    return sort(select(rows, config.getoption("keyword"), config.getoption("status")), config.getoption("sort"))


def show(config: Any) -> str:
    formats = [f for f in ("md", "csv", "json") if config.getoption(f)]
    if len(formats) > 1:
        raise UsageError(f"--{formats[0]} and --{formats[1]}: give one format")
    rows = rows_of(config)
    every = bool(config.getoption("all"))
    if formats == ["json"]:
        return json.dumps(dict(experiments=rows), indent=2, default=str) + "\n"
    head, body = table(rows, every)
    if formats == ["csv"]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(head)
        writer.writerows(body)
        return out.getvalue()
    if formats == ["md"]:
        cell = lambda c: printable(str(c)).replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(cell(c) for c in head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in body]
        return "\n".join(lines) + "\n"
    if not rows:
        return "no experiments match\n"
    return text(head, body) + f"\n{len(rows)} experiment{'s' if len(rows) != 1 else ''}\n"


def table(rows: list[dict[str, Any]], every: bool) -> tuple[list[str], list[list[str]]]:
    """The header and the cells: #, (tag), experiment, each parameter, (code), each metric,
    status, expectation."""
    params, metrics, code = columns(rows)
    head = [*(["tag"] if every else []), "#", "experiment", *params, *(["code"] if code else []), *metrics,
            "status", "expectation"]
    body = []
    for r in rows:
        cells = [*([r["tag"]] if every else []), str(r["seq"]), r["name"], *(r["params"].get(p, "") for p in params),
                 *([r["code"]] if code else []), *(fmt_metric(r["metrics"].get(m)) for m in metrics),
                 r["status"], r["expectation"] or "—"]
        body.append([c if c.isprintable() else printable(c) for c in map(str, cells)])
    return [printable(c) for c in head], body  # a parameter's name comes from the record too


def text(head: list[str], body: list[list[str]]) -> str:
    """Aligned columns; a long cell is cut to WIDEST characters with …."""
    cut = [[c if len(c) <= WIDEST else c[:WIDEST - 1] + "…" for c in r] for r in [head, *body]]
    widths = [max(len(r[i]) for r in cut) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cut]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
