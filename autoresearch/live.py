"""What a running experiment is doing now, read from its log (``status``, ``status --follow``).

The log of an experiment in flight is its latest ``NNN-name[.k].log``; its progress is the last
progress line in the log's tail, read as the prune plugin reads them (``prune_pattern``: the
share of the budget done and the loss; the default also matches the reference workload's
``step 00042 (35.0%) | loss 3.1``), with the step read from ``step N`` when the line has one and
the loss, failing the pattern, from any ``loss 3.1`` (:func:`autoresearch.supervise.progress`).
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from autoresearch.metrics import NUMBER

STEP = re.compile(r"\bstep[\s:=#]*(\d+)", re.IGNORECASE)
#: the prune plugin's default prune_pattern, for when that plugin is blocked (a core module imports no plugin)
PROGRESS = rf"\((?P<progress>{NUMBER})%\).*?\bloss[\s:=]+(?P<loss>{NUMBER})"


def log_of(run_dir: Path, seq: int) -> tuple[Path | None, int, float | None]:
    """(the latest log of experiment `seq`, its run's index, when that run started, if known:
    the previous run's log was last written when it ended)."""
    logs = sorted((p.stat().st_mtime, p) for p in (run_dir / "logs").glob(f"{seq:03d}-*.log") if p.is_file())
    if not logs:
        return None, 0, None
    path = logs[-1][1]
    m = re.search(r"\.(\d+)\.log$", path.name)
    return path, int(m.group(1)) if m else 0, logs[-2][0] if len(logs) > 1 else None


def read_progress(config: Any, path: Path) -> dict[str, Any]:
    """The latest progress in a log: step, share of the budget done (0 to 1), loss, the line."""
    from autoresearch.supervise import progress, read_tail

    tail = read_tail(path)
    last, loss = progress(tail)
    try:
        pattern = re.compile(config.get("prune_pattern"))
    except (KeyError, AttributeError, TypeError, re.error):  # no prune plugin (-p no:prune): its default
        pattern = re.compile(PROGRESS)
    out: dict[str, Any] = dict(step=None, share=None, loss=loss, line=last[:200])
    for line in reversed(tail.splitlines()[:-1] if tail and not tail.endswith("\n") else tail.splitlines()):
        m = pattern.search(line)
        if not m:
            continue
        out["line"] = line[:200]
        try:
            out["loss"] = float(m.group("loss"))
            if "progress" in pattern.groupindex and m.group("progress") is not None:
                out["share"] = min(1.0, max(0.0, float(m.group("progress")) / 100))
        except (IndexError, ValueError):
            pass
        step = STEP.search(line)
        out["step"] = int(step.group(1)) if step else None
        break
    return out


def in_flight(config: Any, run_dir: Path, entry: dict[str, Any], mean: float | None) -> dict[str, Any]:
    """One experiment in flight: elapsed time, its latest progress and an ETA (from the share of
    the budget its run has done, else from the mean duration of the finished ones)."""
    now = time.time()
    started = float(entry.get("time") or now)
    elapsed = max(0.0, now - started)
    out = dict(seq=entry.get("seq"), nodeid=entry.get("nodeid"), elapsed_s=round(elapsed, 1), eta_s=None,
               run=1, step=None, share=None, loss=None, line="", log=None)
    path, index, run_start = log_of(run_dir, int(entry.get("seq") or 0))
    if path is not None:
        out.update(read_progress(config, path), run=index + 1, log=str(path))
    share = out["share"]
    if share:
        in_run = max(0.0, now - (run_start if run_start and run_start > started else started))
        out["eta_s"] = round(in_run / share - in_run, 1)
    elif mean is not None:
        out["eta_s"] = round(max(0.0, mean - elapsed), 1)
    return out


def describe(r: dict[str, Any]) -> str:
    """``#3 experiments/lr.toml::lr for 2m — step 420 (42%), loss 3.102, about 3m to go``."""
    done = []
    if r["step"] is not None:
        done.append(f"step {r['step']}" + (f" ({r['share']:.0%})" if r["share"] is not None else ""))
    elif r["share"] is not None:
        done.append(f"{r['share']:.0%} done")
    if r["loss"] is not None:
        done.append(f"loss {r['loss']:.4g}")
    if r["run"] > 1:
        done.append(f"run {r['run']}")
    if r["eta_s"] is not None:
        done.append(f"about {fmt_s(r['eta_s'])} to go")
    return f"#{r['seq']} {r['nodeid']} for {fmt_s(r['elapsed_s'])}" + (" — " + ", ".join(done) if done else "")


def summary(data: dict[str, Any]) -> tuple[tuple, str]:
    """(what changed, one line) for ``status --follow`` piped: a line is printed when the first
    part changes (a result, a new progress line), never for the clock alone."""
    counts = data["counts"]
    done = len(data["experiments"])
    parts = [f"{done} experiment{'s' if done != 1 else ''}"
             + (f" ({', '.join(f'{counts[s]} {s}' for s in counts if counts[s])})" if done else "")]
    if data["best"]:
        parts.append(f"best {data['best']['metric']} {data['best']['shown']}")
    parts += [f"running {describe(r)}" for r in data["running"]]
    key = (done, tuple(counts.values()), tuple((r["seq"], r["step"], r["share"], r["loss"], r["run"])
                                               for r in data["running"]))
    return key, time.strftime("%H:%M:%S ") + "; ".join(parts)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
