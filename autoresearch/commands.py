"""The commands beside ``run``: ``status``, ``new`` and ``report``."""
from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from autoresearch.errors import CollectError, ExpectationError, PatchError, UsageError

STATUS_LINES = 40


def load_reports(config: Any) -> tuple[str, list[Any]]:
    """The tag and the finished reports of a run (--tag, default the latest), read from its ledger."""
    from autoresearch.session import Session

    session = Session.open_existing(config, config.getoption("tag"))
    return session.tag, [r for r in session.history if r.status != "interrupted"]


def status(config: Any) -> str:
    """At most ~40 lines: best so far, the last results, what is queued, the lessons' headline."""
    from autoresearch.collect import collect
    from autoresearch.reports import best_kept

    tag, done = load_reports(config)
    counts = Counter(r.status for r in done)
    lines = [f"autoresearch status — tag {tag} (branch autoresearch/{tag}): {len(done)} experiments, "
             + ", ".join(f"{counts[s]} {s}" for s in ("keep", "discard", "crash") if counts[s])]
    best, base = best_kept(done), next((r for r in done if r.is_baseline), None)
    if best is not None:
        gain = f" ({best.value - base.value:+.6f} from the baseline {base.value:.6f})" if base and base.value is not None else ""
        lines.append(f"best {best.metric} {best.value:.6f}{gain}: {best.description} [{best.commit[:7]}]")
    lines.append("last results:")
    for r in done[-12:]:
        value = f"{r.value:.6f}" if r.value is not None and r.status != "crash" else "—"
        delta = f"{r.value - r.baseline_value:+.6f}" if r.value is not None and r.baseline_value is not None and r.status != "crash" else ""
        extra = f" — {r.root_cause[:70]}" if r.status == "crash" else ""
        lines.append(f"  #{r.seq:<3} {r.status:<8} {value:>10} {delta:>10}  {r.description[:60]}{extra}")
    try:
        items, errors = collect(config, [config.rootdir / p for p in config.get("paths")], config.hook)
    except UsageError as exc:
        items, errors = [], []
        lines.append(f"queued: unknown ({exc})")
    run_keys = {r.key for r in done}
    queued = [h for h in items if h.key not in run_keys]
    lines.append(f"queued ({len(queued)}):" + ("" if queued else " nothing — write hypotheses with autoresearch new"))
    lines += [f"  {h.nodeid}" for h in queued[:8]]
    if len(queued) > 8:
        lines.append(f"  … and {len(queued) - 8} more")
    if errors:
        lines.append(f"  {len(errors)} file(s) with errors, e.g. {errors[0]} (autoresearch run --collect-only)")
    lessons = config.rootdir / config.get("lessons_path", "experiments/lessons.md")
    if lessons.is_file():
        rules = [line for line in lessons.read_text().splitlines() if line.startswith(("- NEVER", "- ALWAYS"))]
        lines.append("lessons: " + (f"{len(rules)} rules, e.g. {rules[0][2:][:110]}" if rules else "no rules yet"))
    return "\n".join(lines[:STATUS_LINES])


# -------------------------------------------------------------------------------------------


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word such as silu: a string


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "_".join(words)[:48].strip("_") or "hypothesis"


def new(config: Any) -> Path:
    """Write a TOML hypothesis file that --collect-only accepts; returns its path."""
    import tomli_w

    from autoresearch.collect import editable_texts
    from autoresearch.model import build
    from autoresearch.patching import apply_patch

    opt = config.option
    sets = {}
    for item in opt.sets:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: write NAME=VALUE, e.g. --set MATRIX_LR=0.06")
        key, value = item.split("=", 1)
        sets[key.strip()] = _toml_value(value.strip())
    expect = {}
    for item in opt.expect:
        if "=" not in item:
            raise UsageError(f"--expect {item!r}: write METRIC=EXPR, e.g. --expect 'val_bpb=< baseline'")
        key, value = item.split("=", 1)
        expect[key.strip()] = value.strip()
    name = opt.name or slug(opt.description)
    raw: dict[str, Any] = {"description": opt.description}
    texts = editable_texts(config)
    try:
        draft = build({**raw, "hypothesis": "-", "set": sets, "expect": expect, "name": name,
                       "replace": [{"old": o, "new": n} for o, n in opt.replace]}, "new", 1, name)[0]
        patch = apply_patch(draft, texts, config.editable, config.protected)
    except (CollectError, PatchError, ExpectationError) as exc:
        raise UsageError(str(exc).removeprefix("new:1: ")) from None
    metric = config.get("metric")
    change = ", ".join(f"{n} from {o} to {v}" for n, o, v in patch.changes) or opt.description
    raw["hypothesis"] = opt.text or (f"Changing {change} should give a "
                                     f"{'lower' if config.get('direction') == 'minimize' else 'higher'} {metric}. "
                                     "(Written by autoresearch new: say why you expect it.)")
    if opt.baseline != "best":
        raw["baseline"] = opt.baseline
    if sets:
        raw["set"] = sets
    if opt.replace:
        raw["replace"] = [{"old": o, "new": n} for o, n in opt.replace]
    raw["expect"] = expect or {metric: "< baseline" if config.get("direction") == "minimize" else "> baseline"}
    folder = config.rootdir / opt.dir if not Path(opt.dir).is_absolute() else Path(opt.dir)
    path = folder / f"{name}.toml"
    if path.exists():
        raise UsageError(f"{path} already exists (choose another name with --name)")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {opt.description}\n" + tomli_w.dumps(raw))
    return path


# -------------------------------------------------------------------------------------------


def report(config: Any) -> str:
    """seed 002's tables in Markdown: metrics against targets, parameters, compute and cost."""
    tag, done = load_reports(config)
    if not done:
        raise UsageError(f"run {tag!r} has no finished experiments yet")
    metric = done[0].metric
    names = sorted({k for r in done for k in r.metrics}, key=lambda k: (k != metric, k))[:6]
    out = [f"# autoresearch report — {tag}\n", "## Metrics\n",
           "| # | experiment | " + " | ".join(names) + " | target | expectation | status |",
           "|---|---|" + "---|" * len(names) + "---|---|---|"]
    for r in done:
        cells = [f"{r.metrics[k]:.6g}" if k in r.metrics and r.status != "crash" else "—" for k in names]
        if r.baseline_value is not None and r.value is not None and not r.is_baseline and r.status != "crash":
            arrow = "↓" if r.value < r.baseline_value else "↑" if r.value > r.baseline_value else "="
            cells[0] += f" {arrow}"
        target = "; ".join(f"{m} {e}" for m, e in r.expect) or "—"
        out.append(f"| {r.seq} | {r.description} | " + " | ".join(cells)
                   + f" | {target} | {r.expectation or '—'} | {r.status} |")
    params = sorted({n for r in done for n, _, _ in r.changes})
    if params:
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
                cells.append(f"{o} → **{v}**{arrow}" + ("" if r.status == "keep" else " (reverted)"))
            out.append(f"| {p} | {original} | " + " | ".join(cells) + " |")
    rate, gpus = config.get("cost_per_hour"), config.get("gpus") or 1
    out += ["\n## Compute and cost\n", "| experiments | status | GPU-hours | cost |", "|---|---|---|---|"]
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
        plot(done, Path(plot_path))
        out.append(f"\n![{metric} per experiment]({plot_path})")
    return "\n".join(out) + "\n"


def plot(reports: list[Any], path: Path) -> None:
    """The metric per experiment: kept green and labelled, discarded grey, crashes red, running best."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'autoresearch[plot]'") from None
    metric, minimize = reports[0].metric, reports[0].direction == "minimize"
    fig, ax = plt.subplots(figsize=(10, 5))
    best, xs, ys = None, [], []
    for r in reports:
        if r.status == "crash" or r.value is None:
            ax.axvline(r.seq, color="tab:red", alpha=0.3, lw=1)
            continue
        if r.status == "keep":
            ax.scatter(r.seq, r.value, color="tab:green", zorder=3)
            ax.annotate(r.description[:28], (r.seq, r.value), textcoords="offset points", xytext=(4, 6), fontsize=7)
            best = r.value if best is None or (r.value < best if minimize else r.value > best) else best
        else:
            ax.scatter(r.seq, r.value, color="grey", alpha=0.6, zorder=2)
        if best is not None:
            xs.append(r.seq)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:green", alpha=0.7, label="best so far")
        ax.legend()
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{metric} ({'lower' if minimize else 'higher'} is better)")
    ax.set_title(f"{metric} per experiment (green: kept, grey: discarded, red: crash)")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
