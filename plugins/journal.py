"""journal: ``experiments/journal.md``, append-only, in the ml-experiment journal's format.

The PLANNED entry is written before the workload starts ("no new experiment without logging the
hypothesis first"); the COMPLETED part is appended when the result is in, with a learning and a
next step the tool derives from the result: one COMPLETED for every PLANNED. An experiment that
several workers run again on a new tip (the tip moved while it ran) gets a "Re-dispatched" note
between the two, not a second PLANNED.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import re
import threading
from pathlib import Path

from autoresearch.patches import patch_kinds
from autoresearch import hookimpl
from autoresearch.config import inside
from autoresearch.journalmarks import inert, marker
from autoresearch.reports import Cause, Report, Status, sign


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("journal_path", check=inside, default="experiments/journal.md",
                      help="the experiment journal, relative to the project root (append-only)")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def learning(r: Report) -> str:
    """One sentence the result supports."""
    if r.status == Status.INTERRUPTED:
        return "Nothing yet: the run was interrupted, and it runs again on --resume."
    if r.setup_crash:  # the unmodified code: no idea was tested, nothing to learn about one
        return f"The unmodified code crashed (a setup crash, no lesson): {r.root_cause or 'see the log'}."
    if r.status == Status.CRASH:
        return f"This change crashed the run: {r.root_cause or 'see the log'}."
    if r.pruned:
        return f"This change fell behind the tip's learning curve and was stopped early ({r.root_cause})."
    if r.is_baseline:
        noise = f" (run-to-run noise: σ {r.sigma:.2g})" if r.sigma is not None else ""
        return (f"The unmodified code scores {r.metric} {r.shown}{noise}; every experiment of this run is "
                "compared with it.")
    change = ", ".join(f"{n} {o} → {v}" for n, o, v in r.changes) or r.description
    imp = r.improvement
    if imp is None:
        return f"{change} produced no comparable {r.metric}."
    runs = f"{len(r.values)} run{'s' if len(r.values) != 1 else ''}"
    if r.beyond_noise or imp == 0:
        word = "improved" if imp > 0 else "worsened" if imp < 0 else "did not change"
        how = f"{word} {r.metric} by {abs(imp):.4f}" + (f" (in {runs})" if imp else "")
    else:
        how = f"did not move {r.metric} beyond the noise ({sign(r.direction) * imp:+.4f} in {runs})"
    exp = f"; the hypothesis was {r.expectation}" if r.expectation else ""
    return f"{change} {how} and was {'kept' if r.status == Status.KEEP else 'discarded'}{exp}."


def next_step(r: Report) -> str:
    """A suggestion derived from the result, such as the other direction for a worse parameter."""
    if r.status == Status.INTERRUPTED:
        return "Resume the run: autoresearch run --resume."
    if r.setup_crash:
        return "Fix the setup (data, environment, the command), then continue with autoresearch run --resume."
    if r.status == Status.CRASH:
        if r.cause in (Cause.OUT_OF_MEMORY, Cause.KILLED):
            return "Cut memory (batch size, width or depth) before trying this idea again."
        if r.cause == Cause.TIMEOUT:
            return "Make each step cheaper or drop the idea: a timeout counts as a crash."
        if r.cause == Cause.NAN:
            return "Lower the learning rate or add warm-up or clipping before retrying."
        if r.cause == Cause.PATCH_FAILED:
            return "Build on a baseline that ran, or on the tip (baseline = \"best\")."
        return "Fix the error if it is trivial (the seed allows two attempts); otherwise drop the idea."
    if r.is_baseline:
        return "Run the hypotheses against this baseline."
    if r.pruned:
        return "Drop the idea, or try a gentler version: its loss stayed behind the tip's all along."
    if any(run.cause == Cause.CONFLICT for run in r.runs):
        return "Rewrite the patch against the current tip (a kept change touched the same lines), or drop the idea."
    if r.status != Status.KEEP and not r.beyond_noise:
        return "Within noise: try a bolder version, or combine it with another near miss."
    if len(r.changes) == 1:
        name, old, new = r.changes[0]
        a, b = _number(old), _number(new)
        if a is not None and b is not None and a != b:
            up = b > a
            if r.status == Status.KEEP:
                if not in_range(name, b, up):
                    return f"{name} is at the edge of its range ({new}): build on it with another idea."
                return f"Push further in the same direction: {name} {'above' if up else 'below'} {new}."
            if not in_range(name, a, not up):
                return f"Drop the idea: {name} cannot go {'below' if up else 'above'} {old}."
            return f"Try the other direction: {name} {'below' if up else 'above'} {old}."
    if r.status == Status.KEEP:
        return "Build on it: combine with the next most promising idea."
    return "Drop the idea, or try a different mechanism for the same goal."


SHARES = re.compile(r"(?i)dropout|prob|ratio|frac|momentum|beta\d?$|(^|_)p$|top_p|keep")


def in_range(name: str, value: float, up: bool) -> bool:
    """Whether going further from `value` (up or down) can still be a valid setting: nothing below
    zero that was not negative already, no share (dropout, a probability, a ratio) above 1."""
    if not up:  # at 0 a negative count, rate or size makes no sense; at 1, zero layers or heads neither
        return value < 0 or (value > 1 if float(value).is_integer() else value > 0)
    return not (SHARES.search(name) and 0 <= value and value >= 1)


def heading(now: dt.datetime, tag: str, name: str) -> str:
    """An entry's heading, the seed's ``### YYYY-MM-DD HH:MM — [Experiment Name]`` with the run's tag
    before the dash: one journal holds every run of the project, and each entry says whose it is."""
    return f"\n### {now:%Y-%m-%d %H:%M} · run {tag} — {name}\n"


def planned(exp, now: dt.datetime) -> str:
    h = exp.hypothesis
    metric = exp.session.config.get("metric")
    base = exp.baseline_metrics.get(metric)
    if h is None:
        config = "- (none: the unmodified code)"
        change, hypothesis, expected = "none: this is the baseline", "the unmodified code, to compare against", "a reference value"
    else:
        changes = exp.patch.changes if exp.patch else []
        added, removed = (exp.patch.counts if exp.patch else (0, 0))
        config = "\n".join(f"- {n}: {o} → {v}" for n, o, v in changes) or f"- (code change: +{added} -{removed} lines)"
        kinds = "/".join(patch_kinds(h)) or "no patch"
        files = [f for f, text in exp.patch.after.items() if text != exp.patch.before[f]] if exp.patch else []
        files = ", ".join(files) or h.file or exp.session.config.editable[0]  # the files the patch changed
        change = f"{h.description} ({kinds} in {files}; {h.nodeid}, commit {exp.commit[:7]})"
        hypothesis = h.hypothesis
        expected = "; ".join(f"{m} {e}" for m, e in h.expect) or f"{metric} better than the baseline (no expectation given)"
    baseline = f"{metric} {base:.6f} (commit {exp.base_commit[:7]})" if base is not None else "none yet"
    return (f"{heading(now, exp.session.tag, exp.name)}\n**Status**: PLANNED\n**Hypothesis**: {hypothesis}\n"
            f"**Change**: {change}\n**Config**:\n{config}\n**Expected outcome**: {expected}\n**Baseline**: {baseline}\n")


def completed(r: Report, unit: str = "GPU") -> str:
    if r.status == Status.CRASH:
        outcome = f"{r.status} — {r.root_cause or 'unknown cause'} (log: {r.log_path})"
    elif r.status == Status.INTERRUPTED:
        outcome = f"{r.status} — {r.root_cause} (log: {r.log_path})"
    elif r.pruned:
        outcome = f"pruned — {r.root_cause} (log: {r.log_path})"
    elif r.value is None:
        outcome = f"not run — {r.reason}"
    else:
        others = ", ".join(f"{k} {v:g}" for k, v in r.metrics.items() if k != r.metric)
        vs = f" ({r.delta:+.6f} against the baseline)" if r.delta is not None else ""
        verdict = "" if r.is_baseline else f"; {r.reason}"
        outcome = f"{r.metric} {r.shown}{vs}{verdict}" + (f"; {others}" if others else "")
    if r.expectation:
        delta = f"{r.expectation} — " + "; ".join(r.expectation_details)
    elif r.is_baseline:
        delta = "n/a (baseline)"
    else:
        delta = "no expectation was stated"
    return (f"\n**Status**: COMPLETED\n**Actual outcome**: {outcome}\n**Delta**: {delta}\n"
            f"**Duration**: {duration(r.duration)} wall, {r.duration / 3600:.3f} {unit}-hours\n"
            f"**Learning**: {learning(r)}\n**Next**: {next_step(r)}\n")


def redispatched(exp, now: dt.datetime) -> str:
    """The note for an experiment run again on a new tip: its PLANNED entry above stands."""
    return (f"\n> **Re-dispatched** {now:%Y-%m-%d %H:%M}: {exp.name} (experiment {exp.seq}) was measured on a tip "
            f"that moved while it ran (a keep); it runs again on the new tip {exp.base_commit[:7]}, as commit "
            f"{exp.commit[:7]}. Its PLANNED entry above stands; the COMPLETED entry below is this run's.\n")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = ""  # the experiment whose entry was written last
        self.config = None
        self.planned: set[int] = set()  # experiments with a PLANNED entry and no COMPLETED one yet
        self.lock = threading.Lock()  # PLANNED entries come from the workers' threads
        self.tag = ""

    @functools.cached_property
    def unit(self) -> str:
        """GPU-hours, or CPU-hours where no GPU runs (asked once, when first needed)."""
        from autoresearch.loop import compute_unit

        return compute_unit(self.config) if self.config is not None else "GPU"

    def open_entries(self, tag: str) -> dict[int, int]:
        """For each experiment of run `tag`: how many of its PLANNED entries have no COMPLETED one
        yet, counted from the markers each entry ends with (invisible in Markdown): exact across
        any stop, where comparing texts is not."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        found: dict[int, int] = {}
        for seq, kind in re.findall(rf"<!-- autoresearch {re.escape(tag)} (\d+) (planned|completed) -->", text):
            found[int(seq)] = found.get(int(seq), 0) + (1 if kind == "planned" else -1)
        return found

    def append(self, text: str, sync: bool = True) -> None:
        """Append `text`, fsynced unless `sync` is False: a PLANNED entry is not, the COMPLETED
        entry's fsync takes both to the disk (as the ledger's "start" line goes with its "done"). A
        PLANNED entry lost with the machine's power is written again on --resume: the experiment
        runs again, or its entry is written after the fact (autoresearch_experiment_logreport)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            if new:
                f.write("# Experiment journal\n\nAppend-only: written by autoresearch before and after every "
                        "experiment (PLANNED, then COMPLETED).\n")
            f.write(text)
            f.flush()
            if sync:
                os.fsync(f.fileno())

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        """Close what a killed runner left open: one interrupted entry for every PLANNED entry with no
        COMPLETED one, except the one a report the runner finished but had not logged yet will close
        (the session logs those next). An experiment interrupted before, run again and killed, is closed
        too: whatever the ledger says of it, its open entries are counted from the journal itself."""
        self.tag = session.tag
        unlogged = {r.seq for r in getattr(session, "unlogged", None) or ()}
        names = {r.seq: r.name for r in session.history}
        now = dt.datetime.now()
        for seq, left in sorted(self.open_entries(session.tag).items()):
            for _ in range(left - (1 if seq in unlogged else 0)):
                name = names.get(seq, f"experiment {seq}")
                self.append(f"{heading(now, session.tag, name + ', interrupted')}\n**Status**: COMPLETED\n"
                            f"**Actual outcome**: interrupted — the runner stopped during experiment {seq}; it "
                            "runs again below, with an entry of its own\n" + marker(session.tag, seq, "completed"))

    @hookimpl
    def autoresearch_experiment_logstart(self, experiment) -> None:
        with self.lock:
            if experiment.seq in self.planned:  # run again on a new tip: one PLANNED, one COMPLETED
                self.append(inert(redispatched(experiment, dt.datetime.now()))
                            + marker(self.tag, experiment.seq, "redispatched"), sync=False)
                return
            self.append(inert(planned(experiment, dt.datetime.now())) + marker(self.tag, experiment.seq, "planned"),
                        sync=False)
            self.planned.add(experiment.seq)
            self.last = experiment.nodeid

    @hookimpl
    def autoresearch_experiment_logreport(self, report: Report) -> None:
        text = inert(completed(report, self.unit)) + marker(self.tag, report.seq, "completed")
        with self.lock:
            if report.seq in self.planned:  # planned by this process: its COMPLETED entry is not written yet
                self.planned.discard(report.seq)
            else:  # a resumed run records what a stop left unrecorded: its entry, once
                left = self.open_entries(self.tag).get(report.seq, 0)
                if left < 0 or (left == 0 and f"<!-- autoresearch {self.tag} {report.seq} " in self._text()):
                    return  # written before the stop
                if left == 0:  # its PLANNED entry never made it to the journal: a short one, after the fact
                    text = ("\n**Status**: PLANNED (written after the fact: the runner stopped before it was)\n"
                            + marker(self.tag, report.seq, "planned") + text)
            if self.last != report.nodeid:  # another entry came in between (several workers, a resume)
                text = inert(heading(dt.datetime.now(), self.tag, f"{report.name}, completed")) + text
            self.append(text)
            self.last = report.nodeid

    def _text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@hookimpl
def autoresearch_configure(config) -> None:
    journal = Journal(config.rootdir / config.get("journal_path"))
    journal.config = config
    config.pluginmanager.register(journal, "journal-writer")
