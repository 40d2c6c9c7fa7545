"""The report's tables (seed 002), as lists of Markdown lines: the metrics of every experiment,
the summary of iterations (kept, reverted and running), the parameters and code each changed, and
the compute and cost of each. ``autoresearch report`` (commands/report.py) puts them together.

Everything a cell shows is escaped (:func:`md`): a run's record may come from another machine.
"""
from __future__ import annotations

import re
from typing import Any

from autoresearch.reports import Cause, Status, printable

#: The summary's lines report shows by default besides the metric and the targets': time,
#: throughput and memory, by their names as the workload prints them.
TIME = re.compile(r"(seconds|_secs?|_time|_ms)$|^(time|duration|elapsed)", re.IGNORECASE)
THROUGHPUT = re.compile(r"per_s(ec(ond)?)?$|_per_s_|throughput|tokens?_per|samples_per|mfu|tok_s$|_tps$|it_s$",
                        re.IGNORECASE)
MEMORY = re.compile(r"vram|memory|^mem_|_mem$|_mem_|_mb$|_gb$|rss", re.IGNORECASE)
MANY = 12  # columns in a table before it shows the latest only


def md(text: Any) -> str:
    """A Markdown table cell: a | in it would start a new cell; a control character is escaped."""
    return printable(str(text)).replace("|", "\\|")


def chosen_metrics(config: Any, done: list[Any]) -> tuple[list[str], str]:
    """The metrics the report shows and a sentence saying which and why: ``report_metrics`` when
    set, else the metric, the targets' metrics and the summary's time, throughput and memory."""
    printed = list(dict.fromkeys(k for r in done for k in r.metrics))
    metric, targets = config.get("metric"), list((config.get("targets") or {}))
    chosen = list(config.get("report_metrics") or [])
    if chosen:
        why = "set by report_metrics"
    else:
        summary = [k for k in printed if not k.startswith("reported.") and k not in (metric, *targets)
                   and (TIME.search(k) or THROUGHPUT.search(k) or MEMORY.search(k))]
        chosen = list(dict.fromkeys([metric, *targets, *summary]))
        why = "the metric, the targets' metrics and the summary's time, throughput and memory lines; set " \
              "report_metrics to choose"
    hidden = [k for k in printed if k not in chosen]
    text = f"Metrics shown: {', '.join(chosen)} ({why})." + (
        f" Not shown: {', '.join(hidden[:12])}{' …' if len(hidden) > 12 else ''}." if hidden else "")
    return chosen, text


def arrow(value: float, previous: float | None) -> str:
    """↑ or ↓ against the previous value, doubled past a 25 % change (seed 002)."""
    if previous is None or value == previous:
        return ""
    big = previous and abs(value - previous) / abs(previous) > 0.25
    return (" ↑↑" if big else " ↑") if value > previous else (" ↓↓" if big else " ↓")


def marks(r: Any, tip: Any, best: Any) -> str:
    """The status cell: ``keep (tip, best)``, ``discard (pruned)``, ``crash (smoke)``."""
    notes = []
    if tip is not None and r.seq == tip.seq:
        notes.append("tip")
    if best is not None and r.seq == best.seq:
        notes.append("best")
    if r.status == Status.CRASH and r.cause:
        notes.append(str(r.cause))
    elif r.cause == Cause.PRUNED:
        notes.append("pruned")
    return f"{r.status}" + (f" ({', '.join(notes)})" if notes else "")


def expected(r: Any) -> str:
    """What the hypothesis expected and how it came out: ``val_bpb < baseline: confirmed``."""
    if not r.expect:
        return "—"
    return md("; ".join(f"{m} {e}" for m, e in r.expect)) + (f": {r.expectation}" if r.expectation else "")


def target_cell(config: Any, r: Any) -> str:
    """Whether an experiment met the targets (settings every keep must meet): met, or what it missed."""
    from autoresearch.expect import parse_expectation

    if r.status == Status.CRASH or r.value is None:
        return "—"
    missed = []
    for metric, expr in (config.get("targets") or {}).items():
        status, _ = parse_expectation(expr).check(r.metrics.get(metric), r.baseline_metrics.get(metric), metric)
        if status != "confirmed":
            missed.append(metric)
    return "met" if not missed else md("missed: " + ", ".join(missed))


def metrics_table(config: Any, done: list[Any], running: list[dict], names: list[str], tip: Any, best: Any) -> list[str]:
    """Every experiment (and those running, ``?``): its metrics, its expectation, the targets, its status."""
    metric = config.get("metric")
    targets = bool(config.get("targets"))
    out = ["| # | experiment | " + " | ".join(md(n) for n in names) + " | expected (hypothesis) |"
           + (" targets |" if targets else "") + " status |",
           "|---|---|" + "---|" * len(names) + "---|" + ("---|" if targets else "") + "---|"]
    for r in done:
        cells = [(r.shown if k == metric else f"{r.metrics[k]:.6g}") if k in r.metrics and r.status != Status.CRASH
                 else "—" for k in names]
        if names and names[0] == metric and r.baseline_value is not None and r.value is not None \
                and not r.is_baseline and r.status != Status.CRASH:
            cells[0] += " ↓" if r.value < r.baseline_value else " ↑" if r.value > r.baseline_value else " ="
        if names and names[0] == metric and r.outliers and r.status != Status.CRASH:  # kept in the data, flagged
            cells[0] += f" ({len(r.outliers)} outlier{'s' if len(r.outliers) > 1 else ''}, left out of the verdict)"
        out.append(f"| {r.seq} | {md(r.description)} | " + " | ".join(cells) + f" | {expected(r)} |"
                   + (f" {target_cell(config, r)} |" if targets else "") + f" {marks(r, tip, best)} |")
    for x in running:
        out.append(f"| {x['seq']} | {md(x['nodeid'])} | " + " | ".join("?" for _ in names) + " | ? |"
                   + (" ? |" if targets else "") + f" {x['state']} |")
    return out


def column(r: Any) -> str:
    """An iteration's heading: ``#3 lr up (reverted)``."""
    if r.is_baseline:
        return "baseline"
    state = "" if r.status == Status.KEEP else " (crash)" if r.status == Status.CRASH else " (reverted)"
    return f"#{r.seq} {md(r.description[:24])}{state}"


def iterations_table(config: Any, done: list[Any], running: list[dict], names: list[str]) -> list[str]:
    """seed 002's Summary of Iterations: each metric at every iteration, kept or reverted, with an
    arrow against the commit it was built on (doubled past 25 %), ``?`` for one still running, and
    the target. With more than MANY iterations: the baseline and the latest."""
    targets = dict(config.get("targets") or {})
    if len(done) + len(running) < 2:
        return []
    shown, note = list(done), ""
    if len(shown) + len(running) > MANY:
        keep = max(1, MANY - 1 - len(running))
        hidden = len(shown) - 1 - keep
        shown = [shown[0], *shown[-keep:]] if shown[0].is_baseline else shown[-keep - 1:]
        note = f"\n_{hidden} earlier iterations are in the Experiments table above._"
    metrics = list(dict.fromkeys([*names, *targets]))
    out = ["\n## Summary of iterations\n",
           "Each metric at every iteration: kept, reverted (not kept: the next one builds on the tip) and running "
           "(`?`); arrows against the commit it was built on, doubled past a 25 % change." + note + "\n",
           "| metric | " + " | ".join([column(r) for r in shown] + [f"#{x['seq']} ?" for x in running]) + " | target |",
           "|---|" + "---|" * (len(shown) + len(running)) + "---|"]
    for m in metrics:
        cells = []
        for r in shown:
            value = r.metrics.get(m) if r.status != Status.CRASH else None
            cells.append("crash" if r.status == Status.CRASH else "—" if value is None else
                         f"{value:.6g}{'' if r.is_baseline else arrow(value, r.baseline_metrics.get(m))}")
        cells += ["?" for _ in running]
        out.append(f"| {md(m)} | " + " | ".join(cells) + f" | {md(targets.get(m, '—'))} |")
    return out


#: The patch kinds whose changes are named parameters (a constant, a flag, a config key, an
#: override): shown row by row; the others (replace, diff) are code changes, shown by description.
NAMED = ("set", "keys", "args", "overrides")


def change_cell(r: Any, p: str | None) -> str:
    """What one experiment did to one parameter (``0.01 → **0.02** ↑``), or to the code (its
    description and line counts), with ``(reverted)`` when it was not kept."""
    state = "" if r.status == Status.KEEP else " (crash)" if r.status == Status.CRASH else " (reverted)"
    if p is None:
        kinds = [k for k in r.patch_kinds if k not in NAMED]
        return f"{md(r.description[:40])} ({'/'.join(kinds)}, +{r.lines_added} −{r.lines_removed} lines){state}" \
            if kinds else ""
    hit = [(o, v) for n, o, v in r.changes if n == p]
    if not hit:
        return ""
    o, v = hit[0]
    try:
        way = " ↑" if float(v) > float(o) else " ↓" if float(v) < float(o) else ""
    except ValueError:
        way = ""
    return f"{md(o)} → **{md(v)}**{way}{state}"


def parameters_table(done: list[Any]) -> list[str]:
    """Every experiment's change: each parameter it set and its code change (replace, diff) as its
    description and line counts. Up to MANY experiments one column each, else one row per change."""
    changed = [r for r in done if not r.is_baseline]
    if not changed:
        return []
    params = sorted({n for r in changed for n, _, _ in r.changes})
    code = any(k not in NAMED for r in changed for k in r.patch_kinds)
    out = ["\n## Parameters and code\n"]
    if len(changed) > MANY:
        out += ["| # | change | from | to | status |", "|---|---|---|---|---|"]
        for r in changed:
            for n, o, v in r.changes:
                out.append(f"| {r.seq} | {md(n)} | {md(o)} | **{md(v)}** | {r.status}"
                           f"{'' if r.status == Status.KEEP else ' (reverted)'} |")
            if change_cell(r, None):
                out.append(f"| {r.seq} | code | | {change_cell(r, None)} | {r.status} |")
            if not r.changes and not change_cell(r, None):
                out.append(f"| {r.seq} | {md(r.description[:40])} | | | {r.status} |")
        return out
    out += ["| parameter | baseline | " + " | ".join(f"#{r.seq}" for r in changed) + " |",
            "|---|---|" + "---|" * len(changed)]
    for p in params:
        original = next(o for r in changed for n, o, _ in r.changes if n == p)
        out.append(f"| {md(p)} | {md(original)} | " + " | ".join(change_cell(r, p) for r in changed) + " |")
    if code:
        out.append("| code (replace, diff) | | " + " | ".join(change_cell(r, None) for r in changed) + " |")
    return out


def cost_tables(config: Any, done: list[Any], history: list[Any]) -> list[str]:
    """The compute and cost by status, then per iteration (each run at its device's price, smoke
    runs included), and the budget: used and remaining."""
    from autoresearch.cost import GPU, budget_line, cost_of, units_of
    from autoresearch.loop import compute_unit

    whole = cost_of(config, history)
    units = list(whole.hours) or [compute_unit(config)]
    out = ["\n## Compute and cost\n", "| experiments | status | " + " | ".join(f"{u}-hours" for u in units) + " | cost |",
           "|---|---|" + "---|" * len(units) + "---|"]
    for s in (Status.KEEP, Status.DISCARD, Status.CRASH):
        rs = [r for r in done if r.status == s]
        c = cost_of(config, rs)
        out.append(f"| {len(rs)} | {s} | " + " | ".join(f"{c.hours.get(u, 0.0):.3f}" for u in units) + f" | {c.shown} |")
    out.append(f"| {len(done)} | **total** | " + " | ".join(f"**{whole.hours.get(u, 0.0):.3f}**" for u in units)
               + f" | {f'**{whole.shown}**' if whole.dollars is not None else '— (set ' + ('cost_per_hour' if GPU in whole.unpriced else 'cost_per_hour_cpu') + ')'} |")
    out += ["\nPer iteration (a smoke run's seconds count with the run they preceded):\n",
            "| # | experiment | status | runs | device | hours | cost |", "|---|---|---|---|---|---|---|"]
    for r in history:
        c = cost_of(config, [r])
        out.append(f"| {r.seq} | {md(r.description[:40])} | {r.status} | {len(r.runs)} | {units_of(config, r)} | "
                   f"{sum(c.hours.values()):.4f} | {c.shown} |")
    out.append(f"\n**Used**: {budget_line(config, history)}.")
    return out
