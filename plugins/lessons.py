"""lessons: ``experiments/lessons.md``, distilled every N experiments and at the session's end.

Seed 001's two sections: the lessons, one line per subject with its evidence merged
(autoresearch/distil.py: "LR ↑ from 0.02: worse (3 tries, ...)"), and the ALWAYS/NEVER rules
(autoresearch/rules.py); then each parameter's tries, the evidence. ``status`` and ``report``
draw the same lessons from the ledger, never from this file's prose.

The distilled part sits between two marker comments and is rewritten each time; everything
outside the markers (notes written by people) is kept word for word.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.config import inside, positive
from autoresearch.reports import Report, Status, better, gain, results
from autoresearch.distil import lines
from autoresearch.rules import derive

BEGIN = "<!-- autoresearch:lessons:begin (generated; edit outside these markers) -->"
END = "<!-- autoresearch:lessons:end -->"
HEAD = ("# Lessons\n\n## Notes\n\nWrite your own notes here, outside the generated block: they are kept "
        "word for word.\n\n")


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("lessons_path", check=inside, default="experiments/lessons.md",
                      help="the distilled lessons, relative to the project root")
    parser.addsetting("lessons_every", type="int", default=4, check=positive,
                      help="distil lessons after every N experiments (3-5 is the seed's advice) and at the end")


def distil(reports: list[Report], today: str, k: float = 2.0) -> str:
    """lessons.md's generated block: the best so far, the distilled lessons (one line per subject),
    the ALWAYS/NEVER rules, and each parameter's tries as evidence."""
    done = results(reports)
    if not done:
        return "_No experiments yet._\n"
    metric, direction = done[0].metric, done[0].direction
    out = []
    top = gain(done)
    if top is not None:
        best = top.best
        better_by = f", {top.improvement:.4f} better than the baseline" if top.improvement is not None else ""
        out.append(f"**Best so far**: {metric} {best.value:.6f} — {best.description} "
                   f"(commit {best.commit[:7]}{better_by}). {len(done)} experiments: "
                   + ", ".join(f"{n} {s}" for s, n in Counter(r.status for r in done).items()) + ".\n")
    # the distilled lessons: one line per subject, its evidence merged (autoresearch/distil.py)
    learned = lines(done, k)
    if learned:
        out.append("## Lessons\n\n" + "\n".join(learned) + "\n")
    out.append("## Rules (hard-won)\n\n" + "\n".join(rules(done, today) or ["_None yet: rules need repeated evidence beyond the noise._"]) + "\n")
    out += evidence(done, metric, direction)
    return "\n".join(out)


def evidence(done: list[Report], metric: str, direction: str) -> list[str]:
    """One table per parameter: every try of it (the lessons' evidence), with the best kept value."""
    by_param: dict[str, list[tuple[Report, str, str]]] = defaultdict(list)
    for r in done:
        for name, old, new in r.changes:
            by_param[name].append((r, old, new))
    out = ["## Evidence per parameter\n"] if by_param else []
    for name in sorted(by_param):
        rows = by_param[name]
        out.append(f"### {name}\n\n| value | from | {metric} | outcome | date |\n|---|---|---|---|---|")
        best_row = None
        for r, old, new in rows:
            value = r.shown if r.value is not None and r.status != Status.CRASH else "—"
            out.append(f"| {new} | {old} | {value} | {r.status}{' (' + r.expectation + ')' if r.expectation else ''} "
                       f"| {dt.date.fromtimestamp(r.started).isoformat()} |")
            if r.status == Status.KEEP and r.value is not None and (best_row is None or better(r.value, best_row[0].value, direction)):
                best_row = (r, new)
        out.append(f"\nBest so far: {name} = {best_row[1]} ({metric} {best_row[0].value:.6f}).\n" if best_row
                   else f"\nBest so far: the original value ({rows[0][1]}); no change of {name} was kept.\n")
    return out


def rules(done: list[Report], today: str) -> list[str]:
    """The ALWAYS/NEVER rules the results support (autoresearch.rules.derive, the one source
    ``status`` reads too), one line each, as lessons.md writes them."""
    return [f"- {rule.text}. Learned: {today}" for rule in derive(done)]


def merge(existing: str, block: str) -> str:
    """Replace the generated block; keep everything else word for word."""
    generated = f"{BEGIN}\n{block.rstrip()}\n{END}"
    if BEGIN in existing and END in existing:
        before, rest = existing.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        return before + generated + after
    prefix = existing if existing.strip() else HEAD
    return prefix.rstrip("\n") + "\n\n" + generated + "\n"


class Lessons:
    def __init__(self, config) -> None:
        self.config = config
        self.path: Path = config.rootdir / config.get("lessons_path")
        self.session = None
        self.since = 0

    def write(self) -> None:
        if self.session is None:
            return
        existing = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        block = distil(self.session.history, dt.date.today().isoformat(), self.config.get("noise_k", 2.0))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(merge(existing, block), encoding="utf-8")
        tmp.replace(self.path)

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session

    @hookimpl
    def autoresearch_experiment_teardown(self, experiment, report) -> None:
        # the report has joined session.history by now (teardown follows logreport)
        if report.status == Status.INTERRUPTED:
            return
        self.since += 1
        if self.since >= self.config.get("lessons_every"):
            self.since = 0
            self.write()

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        self.write()


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(Lessons(config), "lessons-writer")
