"""``autoresearch report``: seed 002's tables in Markdown (or every experiment as JSON), and the plot.

Everything shown is escaped (:func:`autoresearch.reports.printable`): a run's record may come from
an archive another machine wrote.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autoresearch.commands.status import load_reports
from autoresearch.errors import UsageError
from autoresearch.reports import ExitCode, Status, printable


def main(config: Any) -> int:
    from autoresearch.main import check_output

    out, plot = config.getoption("output"), config.getoption("plot")
    if out:
        out = check_output(config, "-o", out)  # the very path that is written, checked
    if plot:
        if Path(plot).suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
            raise UsageError(f"--plot {plot}: give a .png, .svg, .pdf or .jpg file")
        check_output(config, "--plot", plot)  # relative to the current folder, as report writes it
    text = report(config)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    else:
        print(text)
    return ExitCode.OK


def iterations_table(config: Any, done: list[Any], names: list[str]) -> list[str]:
    """seed 002's first table: each metric at the baseline and after each kept experiment, with
    arrows (doubled past a 25 % change) against the previous column, and its target."""
    targets = dict(config.get("targets") or {})
    kept = [r for r in done if r.status == Status.KEEP]
    if len(kept) < 2 and not targets:
        return []
    metrics = list(dict.fromkeys([*names, *targets]))
    out = ["\n## Metrics per kept iteration\n",
           "| metric | " + " | ".join("baseline" if r.is_baseline else f"#{r.seq} {md(r.description[:24])}" for r in kept)
           + " | target |", "|---|" + "---|" * len(kept) + "---|"]
    for m in metrics:
        cells, previous = [], None
        for r in kept:
            value = r.metrics.get(m)
            if value is None:
                cells.append("—")
                continue
            arrow = ""
            if previous is not None and value != previous:
                big = previous and abs(value - previous) / abs(previous) > 0.25
                arrow = (" ↑↑" if big else " ↑") if value > previous else (" ↓↓" if big else " ↓")
            cells.append(f"{value:.6g}{arrow}")
            previous = value
        out.append(f"| {m} | " + " | ".join(cells) + f" | {md(targets.get(m, '—'))} |")
    return out


def md(text: str) -> str:
    """A Markdown table cell: a | in it would start a new cell; a control character is escaped."""
    return printable(str(text)).replace("|", "\\|")


def report(config: Any) -> str:
    """seed 002's tables in Markdown: metrics against targets, parameters, compute and cost.

    One function, long: the tables in the order they are printed, each a few lines of cells."""
    tag, done = load_reports(config)
    if not done:
        raise UsageError(f"run {tag!r} has no finished experiments yet")
    if config.getoption("json"):  # for agents: every finished experiment, whole
        import json

        from autoresearch.reports import record

        return json.dumps(dict(tag=tag, metric=config.get("metric"), direction=config.get("direction"),
                               experiments=[record(r, config.get("memory_metric", "peak_vram_mb"))
                                            for r in done]), indent=2, default=str)
    metric = done[0].metric
    names = sorted({k for r in done for k in r.metrics}, key=lambda k: (k != metric, k))[:6]
    from autoresearch.stats import floor, pooled_over

    sigma, df = pooled_over(done, metric)
    noise = floor(sigma, df, metric, config.get("noise_k"), config.get("repeats"), config.get("max_repeats")) \
        if config.get("repeats") else ""
    out = [f"# autoresearch report — {tag}\n", *([noise[0].upper() + noise[1:] + ".\n"] if noise else []), "## Metrics\n",
           "| # | experiment | " + " | ".join(names) + " | target | expectation | status |",
           "|---|---|" + "---|" * len(names) + "---|---|---|"]
    for r in done:
        cells = [(r.shown if k == metric else f"{r.metrics[k]:.6g}") if k in r.metrics and r.status != Status.CRASH else "—"
                 for k in names]
        if r.baseline_value is not None and r.value is not None and not r.is_baseline and r.status != Status.CRASH:
            arrow = "↓" if r.value < r.baseline_value else "↑" if r.value > r.baseline_value else "="
            cells[0] += f" {arrow}"
        target = "; ".join(f"{m} {e}" for m, e in r.expect) or "—"
        out.append(f"| {r.seq} | {md(r.description)} | " + " | ".join(cells)
                   + f" | {md(target)} | {r.expectation or '—'} | {r.status} |")
    out += iterations_table(config, done, names)
    params = sorted({n for r in done for n, _, _ in r.changes})
    if params and len([r for r in done if r.changes]) > 12:  # many experiments: one row per change, not a column each
        out += ["\n## Parameters\n", "| # | parameter | from | to | status |", "|---|---|---|---|---|"]
        for r in done:
            for n, o, v in r.changes:
                out.append(f"| {r.seq} | {n} | {md(o)} | **{md(v)}** | {r.status if r.status == Status.KEEP else f'{r.status} (reverted)'} |")
    elif params:
        changed = [r for r in done if r.changes]
        out += ["\n## Parameters\n", "| parameter | baseline | " + " | ".join(f"#{r.seq}" for r in changed) + " |",
                "|---|---|" + "---|" * len(changed)]
        for p in params:
            original = next(o for r in changed for n, o, _ in r.changes if n == p)
            cells = []
            for r in changed:
                hit = [(o, v) for n, o, v in r.changes if n == p]
                if not hit:
                    cells.append("")
                    continue
                o, v = hit[0]
                try:
                    arrow = " ↑" if float(v) > float(o) else " ↓" if float(v) < float(o) else ""
                except ValueError:
                    arrow = ""
                cells.append(f"{md(o)} → **{md(v)}**{arrow}" + ("" if r.status == Status.KEEP else " (reverted)"))
            out.append(f"| {p} | {md(original)} | " + " | ".join(cells) + " |")
        code = [", ".join(k for k in r.patch_kinds if k not in ("set", "keys")) for r in changed]  # named above
        if any(code):  # replace and diff changes have no name: one row for them
            out.append("| (code: replace, diff) | | " + " | ".join(
                (c + ("" if r.status == Status.KEEP else " (reverted)")) if c else "" for c, r in zip(code, changed)) + " |")
    rate, gpus = config.get("cost_per_hour"), config.get("gpus") or 1
    from autoresearch.loop import compute_unit

    unit = compute_unit(config)
    out += ["\n## Compute and cost\n", f"| experiments | status | {unit}-hours | cost |", "|---|---|---|---|"]
    total_hours = 0.0
    for s in ("keep", "discard", "crash"):
        rs = [r for r in done if r.status == s]
        hours = sum(r.duration for r in rs) / 3600 * gpus
        total_hours += hours
        out.append(f"| {len(rs)} | {s} | {hours:.3f} | {f'${hours * rate:.2f}' if rate else '—'} |")
    out.append(f"| {len(done)} | **total** | **{total_hours:.3f}** | {f'**${total_hours * rate:.2f}**' if rate else '— (set cost_per_hour)'} |")
    for extra in config.hook.autoresearch_report_extra(config=config):
        if extra:
            out.append("\n" + str(extra))
    plot_path = config.getoption("plot")
    if plot_path:
        from autoresearch.commands.plot import plot

        plot(done, Path(plot_path), config.state_dir / "runs" / tag / "curves")
        out.append(f"\n![{metric} per experiment]({plot_path})")
    return "\n".join(printable(line) for line in "\n".join(out).split("\n")) + "\n"
