"""``autoresearch report --plot``: the metric per experiment and, beside it, the learning curves."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autoresearch.reports import Status, sign
from autoresearch.errors import UsageError


def curves_of(report: Any, folder: Path) -> list[list[tuple[float, float]]]:
    """The learning curves the prune plugin kept for a report's runs (loss against share of budget)."""
    from autoresearch.metrics import read_curve

    curves = (read_curve(folder / f"{Path(run.log_path).stem}.tsv") for run in report.runs if run.log_path)
    return [curve for curve in curves if len(curve) > 1]


def plot(reports: list[Any], path: Path, curves: Path | None = None, tip_seq: int | None = None) -> list[str]:
    """The metric per experiment: kept green and labelled, discarded grey, crashes red; the tip the
    verdicts used (the last keep, a step line) and the best measured (kept) so far, told apart; each
    run a small dot, each mean with its standard error; a point off the clipped axis a triangle at
    its edge with its value. Returns the labels and annotations drawn (what the figure says). Beside it, when the runs' learning
    curves were kept: the kept commits' curves (the tip's is the last of them) against the
    discarded candidates', the pruned ones ending where they were stopped.

    One function, long: matplotlib's calls for one figure, in the order they draw it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'autoresearch[plot]'") from None
    metric, minimize = reports[0].metric, sign(reports[0].direction) < 0
    learned = {r.seq: curves_of(r, curves) for r in reports} if curves is not None and curves.is_dir() else {}
    if any(learned.values()):
        fig, (ax, lc) = plt.subplots(1, 2, figsize=(16, 5), gridspec_kw={"width_ratios": [3, 2]})
        tip = max((r.seq for r in reports if r.status == Status.KEEP and learned.get(r.seq)), default=None)
        for r in reports:
            pruned = r.cause == "pruned"
            style = (dict(color="tab:red", ls="--", alpha=0.7) if pruned else
                     dict(color="tab:green", alpha=0.9 if r.seq == tip else 0.35, lw=2 if r.seq == tip else 1)
                     if r.status == Status.KEEP else dict(color="grey", alpha=0.3, lw=0.8))
            for i, c in enumerate(learned.get(r.seq, [])):
                label = None
                if i == 0 and (r.seq == tip or pruned and not any(line.get_label() == "pruned" for line in lc.lines)):
                    label = f"tip (#{r.seq})" if r.seq == tip else "pruned"
                lc.plot([100 * x for x, _ in c], [y for _, y in c], label=label, **style)
        lc.set_xlabel("% of the budget")
        lc.set_ylabel("training loss")
        lc.set_title("learning curves (green: kept, grey: discarded, red dashed: pruned)")
        lc.grid(alpha=0.3)
        if lc.get_legend_handles_labels()[0]:
            lc.legend()
    else:
        fig, ax = plt.subplots(figsize=(10, 5))
    best, xs, ys, tips = None, [], [], []
    tip = None
    kept_seen, discard_seen, crash_seen, pruned_seen = 0, False, False, False
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)  # x in experiments, y in the axes' height
    points = []  # (seq, value, color): each drawn where it is, or at the edge when the axis is clipped
    for r in reports:
        if r.cause == "pruned":  # stopped early: no value, a mark along the top
            ax.scatter(r.seq, 0.97, transform=top, marker="x", color="tab:red", zorder=3,
                       label="pruned" if not pruned_seen else None)
            pruned_seen = True
            continue
        if r.status == Status.CRASH or r.value is None:
            ax.axvline(r.seq, color="tab:red", alpha=0.3, lw=1)
            crash_seen = True
            continue
        color = "tab:green" if r.status == Status.KEEP else "grey"
        points.append((r.seq, r.value, color))
        if len(r.values) > 1:  # every run as a small dot, the mean with its standard error
            ax.scatter([r.seq] * len(r.values), r.values, color=color, s=8, alpha=0.4, zorder=2)
        if r.sigma and r.values:
            ax.errorbar(r.seq, r.value, yerr=r.sigma / len(r.values) ** 0.5, color=color, capsize=3, zorder=2)
        if r.status == Status.KEEP:
            ax.scatter(r.seq, r.value, color="tab:green", zorder=3, label="kept" if not kept_seen else None)
            kept_seen += 1  # labels staggered up and down, so neighbours do not overlap
            ax.annotate(r.description[:28], (r.seq, r.value), textcoords="offset points",
                        xytext=(4, 6 if kept_seen % 2 else -12), fontsize=7, rotation=20)
            best = r.value if best is None or (r.value < best if minimize else r.value > best) else best
            tip = r.value  # the last keep: what the next experiments are judged against
        else:
            ax.scatter(r.seq, r.value, color="grey", alpha=0.6, zorder=2,
                       label="discarded" if not discard_seen else None)
            discard_seen = True
        if best is not None:
            xs.append(r.seq)
            ys.append(best)
            tips.append(tip)
    if xs:
        ax.step(xs, tips, where="post", color="tab:blue", alpha=0.8, lw=1.5,
                label=f"tip (what verdicts used{f', now #{tip_seq}' if tip_seq is not None else ''})")
        ax.step(xs, ys, where="post", color="tab:green", alpha=0.7, ls="--", label="best measured (kept)")
    base = next((r.value for r in reports if r.is_baseline and r.value is not None), None)
    if base is not None and best is not None and best != base:  # as the seed's notebook: between the baseline and the best
        low, high = min(base, best, *[t for t in tips if t is not None]), max(base, best, *[t for t in tips if t is not None])
        pad = (high - low) * 0.15
        ax.set_ylim(low - pad, high + pad)
        edges(ax, points, low - pad, high + pad)
    if crash_seen:
        ax.plot([], [], color="tab:red", alpha=0.3, label="crash")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # experiments are numbered, never 2.5
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{metric} ({'lower' if minimize else 'higher'} is better)")
    ax.set_title(f"{metric} per experiment (dots: runs, bars: ±1 SE; x: pruned early)")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    said = ax.get_legend_handles_labels()[1] + [t.get_text() for t in ax.texts]
    plt.close(fig)
    return said


def edges(ax: Any, points: list[tuple[int, float, str]], low: float, high: float) -> None:
    """Points off the clipped y-axis: a triangle at the edge they are beyond, with their value."""
    from matplotlib.transforms import blended_transform_factory

    frame = blended_transform_factory(ax.transData, ax.transAxes)
    shown = False
    for seq, value, color in points:
        if low <= value <= high:
            continue
        above = value > high
        ax.scatter(seq, 0.985 if above else 0.015, transform=frame, marker="^" if above else "v", color=color,
                   edgecolors="black", linewidths=0.5, zorder=4, clip_on=False,
                   label="off the scale (value shown)" if not shown else None)
        ax.annotate(f"{value:.4g}", (seq, 0.985 if above else 0.015), xycoords=frame, textcoords="offset points",
                    xytext=(5, -8 if above else 3), fontsize=7, color="dimgrey")
        shown = True
