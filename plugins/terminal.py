"""terminal: pytest-like output. A header, one line per experiment, a live progress line while
training (on a terminal; plain lines in CI), and a closing summary with compute and cost.
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import TextIO

from autoresearch.execute import budget_seconds
from autoresearch import __version__, hookimpl, interrupts
from autoresearch.config import not_negative, positive
from autoresearch.errors import OutputClosed
from autoresearch.reports import Report, Status, gain
from autoresearch.stats import floor

COLORS = {Status.KEEP: "\033[32m", Status.DISCARD: "\033[33m", Status.CRASH: "\033[31m", Status.INTERRUPTED: "\033[35m"}
RESET = "\033[0m"
PLAIN_EVERY = 30.0  # seconds between progress lines when not on a terminal


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("-v", "--verbose", action="count", default=0, group="terminal",
                     help="more detail: each verdict's reason and expectation")
    parser.addoption("-q", "--quiet", action="count", default=0, group="terminal",
                     help="less output: only the summary and crashes")
    parser.addsetting("cost_per_hour", "--cost-per-hour", type="float", default=None, group="terminal",
                      help="price of one GPU-hour, to report the run's cost", check=not_negative)
    parser.addsetting("gpus", type="int", default=1, group="terminal", check=positive,
                      help="GPUs one run uses, for the GPU-hours in the summary")


def fmt_seconds(s: float) -> str:
    m, sec = divmod(int(s), 60)
    return f"{m}m{sec:02d}s" if m else f"{s:.1f}s"


class Terminal:
    def __init__(self, config, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.verbosity = (config.getoption("verbose") or 0) - (config.getoption("quiet") or 0)
        self.tty = self.out.isatty() and os.environ.get("TERM") != "dumb"
        self.colored = self.tty and not os.environ.get("NO_COLOR")  # no-color.org
        self.width = shutil.get_terminal_size((100, 20)).columns
        self.session = None
        self.live: dict[int, tuple[str, str]] = {}  # worker -> (node id, its live line), on a terminal
        self.drawn = 0  # live lines now on the screen
        self.last_plain: dict[int, float] = {}  # worker -> when its last plain progress line was written
        self.lock = threading.RLock()  # progress arrives from the workers' threads
        self.closed = False
        self.decided = 0  # experiments recorded in this session, for [k/n]

    def emit(self, text: str) -> None:
        """Write and flush; when the reader has gone (``| head``), stop the run as an interrupt does."""
        if self.closed:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.closed = True
            from autoresearch.main import silence_stdout

            silence_stdout()
            interrupts.interrupt(OutputClosed())

    def write(self, text: str = "") -> None:
        """A line that stays; the live lines (one per worker at work) are drawn again below it."""
        with self.lock:
            self.emit(self.erase() + text + "\n" + self.draw())

    def erase(self) -> str:
        text = "\r\033[K" + "\033[1A\r\033[K" * (self.drawn - 1) if self.drawn else ""
        self.drawn = 0
        return text

    def draw(self) -> str:
        lines = [text[: self.width - 1] for _, (_, text) in sorted(self.live.items())]
        self.drawn = len(lines)
        return "\n".join(lines)

    def worker(self, experiment) -> str:
        """"[w1] " before a plain line when several workers run at once."""
        return f"[w{experiment.worker}] " if self.session is not None and self.session.workers > 1 else ""

    def color(self, status: str) -> str:
        return f"{COLORS.get(status, '')}{status}{RESET}" if self.colored else status

    def rule(self, title: str) -> str:
        pad = max(3, (min(self.width, 100) - len(title) - 2) // 2)
        return f"{'=' * pad} {title} {'=' * pad}"

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session
        if self.verbosity < 0:
            return
        from autoresearch.execute import command, timeout

        c = self.config
        budget = c.get("budget")
        self.write(self.rule("autoresearch session starts"))
        self.write(f"autoresearch {__version__}, python {sys.version.split()[0]} — root {c.rootdir}")
        steps = c.get("budget_steps")
        self.write(f"tag {session.tag} · branch {session.branch or '(no git)'} · budget "
                   f"{f'{budget:g}s' if budget else 'the workload default'}{f', {steps} steps' if steps else ''} "
                   f"(timeout {timeout(c):g}s) · "
                   f"metric {c.get('metric')} ({c.get('direction')})")
        if session.sandbox is not None:
            self.write(session.sandbox.why)
        if c.get("design"):  # the verdict plugin's estimates (autoresearch/drift.py)
            from autoresearch.drift import estimates

            self.write(estimates(c))
        from autoresearch.objectives import header_lines

        for line in header_lines(c, session.history):  # the objective; the targets the baseline misses
            self.write(line)
        if self.verbosity > 0:
            self.write(f"command: {' '.join(command(c))} in {session.workdir}")
        done = len(session.history)
        n = len(session.items)
        deselected = getattr(session, "deselected", 0)
        self.write(f"collected {n + deselected} {'hypothesis' if n + deselected == 1 else 'hypotheses'}"
                   + (f" / {deselected} deselected / {n} selected" if deselected else "")
                   + (f"; resuming after {done} finished" if done else ""))
        self.write()

    @hookimpl
    def autoresearch_experiment_logstart(self, experiment) -> None:
        self.last_plain[experiment.worker] = 0.0
        if not self.tty and self.verbosity >= 0:
            self.write(f"{self.worker(experiment)}{experiment.nodeid} ... running")

    @hookimpl
    def autoresearch_experiment_progress(self, experiment, elapsed: float, line: str, loss: float | None) -> None:
        if self.verbosity < 0:
            return
        budget = budget_seconds(self.config)
        loss_text = f" · loss {loss:.4f}" if loss is not None else ""
        if self.tty:
            frac = min(1.0, elapsed / budget)
            bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
            text = f"{self.worker(experiment)}{experiment.nodeid[:50]} [{bar}] {fmt_seconds(elapsed)}{loss_text}"
            with self.lock:
                self.live[experiment.worker] = (experiment.nodeid, text)
                self.emit(self.erase() + self.draw())
        elif elapsed - self.last_plain.get(experiment.worker, 0.0) >= PLAIN_EVERY:
            self.last_plain[experiment.worker] = elapsed
            self.write(f"    {self.worker(experiment)}{experiment.nodeid} {fmt_seconds(elapsed)}{loss_text}")

    def progress_count(self) -> str:
        """[k/n]: experiments recorded in this session, of those it has had to run."""
        session = self.session
        if session is None:
            return ""
        done = session.done_keys()
        left = sum(1 for h in session.items if h.key not in done) + (0 if session.baseline_done else 1)
        return f"[{self.decided}/{self.decided + left}]"

    @hookimpl
    def autoresearch_experiment_logreport(self, report: Report) -> None:
        with self.lock:
            self.live = {w: v for w, v in self.live.items() if v[0] != report.nodeid}
        if report.status != Status.INTERRUPTED:
            self.decided += 1
        if self.verbosity < 0 and report.status != Status.CRASH:
            return
        value = f"{report.metric} {report.shown}" if report.value is not None else f"{report.metric} —"
        delta = f"{report.delta:+.6f}" if report.delta is not None and not report.is_baseline else ""
        expect = f" ({report.expectation})" if report.expectation else ""
        tail = f"{expect}  [{fmt_seconds(report.duration)}] {self.progress_count()}"
        line = f"{report.nodeid:<32} {value:<28} {delta:>10}  {report.status}{tail}"
        if len(line) <= min(self.width, 80):
            self.write(line.replace(report.status + tail, self.color(report.status) + tail, 1))
        else:  # a long node id: the verdict on its line, the numbers below, nothing past 80 columns
            self.write(f"{report.nodeid} {self.color(report.status)}{expect} {self.progress_count()}")
            self.write(f"    {value}  {delta}  [{fmt_seconds(report.duration)}]".rstrip())
        if report.status == Status.CRASH:
            self.write(f"    {report.root_cause}  (log: {report.log_path})")
        elif self.verbosity > 0:
            self.write(f"    {report.reason}")
            for line in report.expectation_details:
                self.write(f"    expect: {line}")

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        reports = session.history
        counts = {s: sum(1 for r in reports if r.status == s) for s in Status}
        setup = sum(1 for r in reports if r.setup_crash)  # the baseline crashed: shown apart, no idea failed
        counts[Status.CRASH] -= setup
        parts = [f"{n} {s}" for s, n in counts.items() if n] + ([f"{setup} setup crash{'es' if setup > 1 else ''}"]
                                                                 if setup else [])
        wall = time.time() - session.started
        if not reports and int(exitstatus) == 4:  # refused at start-up: the error says why, nothing to sum up
            return
        self.write()
        self.write(self.rule(f"{', '.join(parts) or 'nothing ran'} in {fmt_seconds(wall)}"))
        top = gain(reports)
        if top is not None:
            best, base = top.best, top.baseline
            total = f", {top.delta:+.6f} from the baseline {base.value:.6f}" if base else ""
            self.write(f"best {best.metric} {best.shown}{total} — {best.description} "
                       f"(commit {best.commit[:7]}{' on ' + session.branch if session.branch else ''})")
        c = self.config
        if reports and c.get("repeats"):  # the verdict plugin's settings (absent when it is blocked)
            sigma, df = session.noise(c.get("metric"))
            self.write(floor(sigma, df, c.get("metric"), c.get("noise_k"), c.get("repeats"), c.get("max_repeats")))
            from autoresearch.drift import line

            moved = line(reports, c.get("metric"), c.get("noise_window", 40))
            if moved:
                self.write(moved)
        from autoresearch.cost import cost_of

        spent = cost_of(self.config, reports)  # each run at its own device's price (autoresearch/cost.py)
        cost = f", {spent.shown}" if spent.dollars is not None and spent.hours else ""
        self.write(f"compute {spent.text}{cost}; results in {self.config.get('results_path', 'results.tsv')}, "
                   f"journal in {self.config.get('journal_path', '-')}")


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(Terminal(config), "terminal-reporter")
