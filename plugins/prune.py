"""prune: stop a run early when its learning curve stays behind the branch tip's.

Every run's curve (loss against the share of the budget done, from the workload's progress
lines) is kept in ``.autoresearch/runs/<tag>/curves/<log name>.tsv``. While a candidate trains,
past ``prune_after`` of its budget, each new point is compared with the tip's curves at the same
point: with two or more tip runs, worse than their mean by more than ``noise_k`` times the spread
of those curves there (sqrt(1 + 1/n) for the candidate's own noise); with one, by more than
``noise_k`` times that curve's point-to-point jitter (sqrt 2: both curves are noisy); and never
by less than ``prune_margin`` (runs that ignore their seed are all alike, and have no spread). Worse at ``prune_patience`` points in a row: the run is stopped, as at a
timeout, and the experiment is a discard whose reason says so ("pruned at 40%: loss 3.10 vs
2.81 ± 0.03 for the tip at the same point"). The baseline is never pruned, nor is a workload
whose output has no progress lines (the terminal says so once).

Progress lines, by default the reference workload's ``step 00042 (35.0%) | loss 3.1 | ...``:
``prune_pattern`` is a regular expression with a named group ``loss`` and, optionally,
``step`` (the step number: the share is step / ``budget_steps`` when the budget is in steps) or
``progress`` (percent of the budget); without either the share is elapsed / budget seconds.
Off with ``prune = false`` or ``-p no:prune``.
"""
from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path

from autoresearch.execute import budget_seconds
from autoresearch import hookimpl
from autoresearch.config import positive
from autoresearch.metrics import NUMBER, read_curve  # read_curve: for mlflow too
from autoresearch.reports import MEASURED, Status
from autoresearch.stats import amount, check_amount

CHUNK = 1 << 20  # bytes of log read at a time
BEHIND = 8 << 20  # further behind than this, the reader jumps to the log's tail
DEFAULT_PATTERN = rf"\((?P<progress>{NUMBER})%\).*?\bloss[\s:=]+(?P<loss>{NUMBER})"


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("prune", "--prune", type="bool", default=True,
                      help="stop a run whose loss curve stays behind the tip's (a discard, never a crash)")
    parser.addsetting("prune_after", type="float", default=0.25, check=lambda v: None if 0 <= v < 1 else
                      "must be a share of the budget, from 0 up to (not including) 1",
                      help="the share of the budget a run always gets before it may be pruned", range=(0, 1))
    parser.addsetting("prune_patience", type="int", default=3, check=positive,
                      help="points in a row its loss must be behind the tip's before a run is pruned")
    parser.addsetting("prune_margin", type="amount", default="2%", check=check_amount,
                      help="the least distance behind the tip's curve that counts (a loss or a share: \"2%\"); "
                           "the noise of its curves, times noise_k, counts when larger")
    parser.addsetting("prune_pattern", default=DEFAULT_PATTERN, check=check_pattern,
                      help="regular expression for a progress line: named groups loss and (optionally) step, "
                           "the step number (the share done is step / budget_steps when budget_steps is set), or "
                           "progress, the percent of the budget done")


def check_pattern(pattern: str) -> str | None:
    try:
        regex = re.compile(pattern)
    except (re.error, OverflowError, RecursionError, MemoryError) as exc:
        return f"not a valid regular expression ({type(exc).__name__}: {str(exc)[:80]})"
    return None if "loss" in regex.groupindex else "needs the named group (?P<loss>...)"


def at(curve: list[tuple[float, float]], x: float) -> float | None:
    """The curve's loss at share x of the budget, linearly between its points; None past its ends."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def jitter(curve: list[tuple[float, float]]) -> float:
    """A curve's noise from one run: the spread of its second differences (6σ² for white noise on a
    smooth trend; the trend's own bends only make it larger, and the margin more cautious)."""
    ys = [y for _, y in curve]
    d2 = [ys[i - 1] - 2 * ys[i] + ys[i + 1] for i in range(1, len(ys) - 1)]
    return math.sqrt(math.fsum(d * d for d in d2) / (6 * len(d2))) if d2 else 0.0


class Pruner:
    def __init__(self, config) -> None:
        self.config = config
        self.pattern = re.compile(config.get("prune_pattern"))
        self.lock = threading.Lock()  # progress comes from the workers' threads
        self.curves: dict[str, list[tuple[float, float]]] = {}  # log path -> its points so far
        self.offsets: dict[str, int] = {}  # log path -> bytes of it read
        self.strikes: dict[str, int] = {}
        self.elapsed: dict[str, float] = {}  # log path -> seconds into its run (the share, without a progress group)
        self.warned = False
        self.tip_cache: tuple = (None, [])

    def curve_path(self, experiment, log_path: Path) -> Path:
        return experiment.session.run_dir / "curves" / f"{log_path.stem}.tsv"

    def tip_curves(self, session) -> list[list[tuple[float, float]]]:
        """Every recorded curve of the tip's commit (its runs, whichever experiments ran it); read
        again only when the tip or the history changed."""
        key = (session.tip, len(session.history))
        with self.lock:
            if self.tip_cache[0] == key:
                return self.tip_cache[1]
        out = []
        for r in session.history:
            if r.commit == session.tip and r.status in MEASURED:
                for run in r.runs:
                    if run.ok and run.log_path:
                        curve = read_curve(session.run_dir / "curves" / f"{Path(run.log_path).stem}.tsv")
                        if len(curve) > 1:
                            out.append(curve)
        with self.lock:
            self.tip_cache = (key, out)
        return out

    def forget(self, key: str) -> None:
        """A log that starts again (an experiment run anew, with the same number): a new curve."""
        for table in (self.offsets, self.curves, self.strikes, self.elapsed):
            table.pop(key, None)

    def read(self, experiment, log_path: Path, elapsed: float | None = None) -> list[tuple[float, float]]:
        """The progress lines the log gained since the last look, as new points of its curve
        (written to the curve's file as they come). `elapsed`: seconds into the run, when it runs."""
        key = str(log_path)
        with self.lock:
            if elapsed is not None:
                if elapsed < self.elapsed.get(key, 0.0):  # its clock went back: another run of the same log
                    self.forget(key)
                self.elapsed[key] = elapsed
            offset = self.offsets.get(key, 0)
            points = self.curves.setdefault(key, [])
            first, new = not points and offset == 0, []
            try:
                with open(log_path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size < offset:  # truncated: a new run writes it
                        self.forget(key)
                        offset, points, first = 0, self.curves.setdefault(key, []), True
                    while offset < size:  # in bounded chunks: a workload may print gigabytes
                        resync = size - offset > BEHIND
                        if resync:  # far behind: jump to the tail, and on from the next whole line
                            offset = size - CHUNK
                        f.seek(offset)
                        chunk = f.read(CHUNK)
                        start = chunk.find(b"\n") + 1 if resync else 0
                        end = chunk.rfind(b"\n") + 1  # whole lines only: the last may still be being written
                        if end <= start:
                            if len(chunk) < CHUNK:
                                break  # the rest of a line still being written
                            end = start = len(chunk)  # a line longer than a chunk: not a progress line
                        for line in chunk[start:end].decode("utf-8", errors="replace").split("\n"):
                            point = self.point(line, self.elapsed.get(key))
                            if point is not None and (not points or point[0] > points[-1][0]):
                                points.append(point)
                                new.append(point)
                        offset += end
            except OSError:
                return []
            self.offsets[key] = offset
        if new or first:
            path = self.curve_path(experiment, log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w" if first else "a") as f:  # a run again after a resume starts its curve anew
                f.write("".join(f"{x:.6g}\t{y:.6g}\n" for x, y in new))
        return new

    def point(self, line: str, elapsed: float | None = None) -> tuple[float, float] | None:
        m = self.pattern.search(line)
        if not m:
            return None
        try:
            y = float(m.group("loss"))
            steps = self.config.get("budget_steps")
            if steps and "step" in self.pattern.groupindex and m.group("step") is not None:
                return float(m.group("step")) / steps, y  # the budget is in steps: the share done in steps
            if "progress" in self.pattern.groupindex and m.group("progress") is not None:
                return float(m.group("progress")) / 100, y
            return (elapsed or 0.0) / budget_seconds(self.config), y
        except (IndexError, ValueError):
            return None

    @hookimpl
    def autoresearch_experiment_progress(self, experiment, elapsed: float, line: str, loss) -> str | None:
        if getattr(experiment, "smoke", None) is not None:  # a smoke run: no curve, never pruned
            return None
        log_path = experiment.log_path
        new = self.read(experiment, log_path, elapsed)
        if not new or experiment.hypothesis is None or not self.config.get("prune"):
            return None
        tip = self.tip_curves(experiment.session)
        for x, y in new:  # every point is a check: patience counts points, however often the runner looks
            if x >= self.config.get("prune_after"):
                reason = self.judge(tip, str(log_path), x, y)
                if reason:
                    return reason
        return None

    @hookimpl
    def autoresearch_parse_metrics(self, experiment, log_path: Path) -> None:
        """After each run: the rest of its curve, to the last line (not for calibrate's stand-in runs)."""
        if hasattr(experiment.session, "run_dir"):
            self.read(experiment, Path(log_path))
        return None

    def judge(self, tip: list[list[tuple[float, float]]], key: str, x: float, y: float) -> str | None:
        values = [v for v in (at(c, x) for c in tip) if v is not None]
        if not values or not math.isfinite(y):
            return None  # nothing to compare with at this point (a NaN loss is the workload's own FAIL)
        n = len(values)
        mean = math.fsum(values) / n
        k = self.config.get("noise_k", 2.0)
        if n > 1:  # the spread of the tip's runs at this point; the candidate's own noise on top
            spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
            noise = k * spread * math.sqrt(1 + 1 / n)
        else:  # one curve: its point-to-point jitter, for both curves
            spread = jitter(tip[0]) if tip else 0.0
            noise = k * spread * math.sqrt(2)
        # never less than prune_margin: identical runs (a script that ignores the seed) have no spread
        margin = max(amount(self.config.get("prune_margin"), mean), noise)
        with self.lock:
            self.strikes[key] = self.strikes.get(key, 0) + 1 if y > mean + margin else 0
            strikes = self.strikes[key]
        if strikes < self.config.get("prune_patience"):
            return None
        noise = f" ± {spread:.2g}" if spread > 0 else ""
        return f"pruned at {x:.0%}: loss {y:.4g} vs {mean:.4g}{noise} for the tip at the same point"

    @hookimpl
    def autoresearch_experiment_logreport(self, report) -> None:
        if self.warned or not report.is_baseline or report.status != Status.KEEP or not self.config.get("prune"):
            return
        if not any(self.curves.get(run.log_path) for run in report.runs):
            self.warned = True
            terminal = self.config.pluginmanager.get_plugin("terminal-reporter")
            text = ("prune: the workload printed no progress lines matching prune_pattern, so no run will be "
                    "pruned (set prune_pattern, or prune = false to silence this)")
            if terminal is not None:
                terminal.write(text)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(Pruner(config), "prune-curves")
