"""The commands beside ``run``: ``status``, ``new``, ``report`` and ``calibrate``."""
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


def runner(config: Any) -> dict[str, Any]:
    """Whether a runner holds the repository's lock now: its pid, tag and start, as it wrote them."""
    import fcntl
    import os

    path = config.state_dir / "lock"
    text = path.read_text(errors="replace").strip() if path.is_file() else ""
    m = re.match(r"pid (\d+), tag (\S+), since (.+)", text)
    alive = False
    if path.is_file():  # held means a runner is at work: the kernel releases it with its holder, however it died
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            alive = True
        finally:
            os.close(fd)
    return dict(alive=alive, pid=int(m.group(1)) if m else None, tag=m.group(2) if m else None,
                since=m.group(3) if m else None)


def running(session: Any, done: list[Any]) -> list[dict[str, Any]]:
    """The experiments in flight (started in the ledger, not done), with elapsed time and an ETA from
    the mean duration of the finished ones."""
    import time

    finished = [r.duration for r in done if r.duration and r.status in ("keep", "discard")]
    mean = sum(finished) / len(finished) if finished else None
    out = []
    for entry in session.pending if session else []:
        elapsed = max(0.0, time.time() - float(entry.get("time") or time.time()))
        out.append(dict(seq=entry.get("seq"), nodeid=entry.get("nodeid"), elapsed_s=round(elapsed, 1),
                        eta_s=round(max(0.0, mean - elapsed), 1) if mean is not None else None))
    return out


def status_data(config: Any) -> dict[str, Any]:
    """Everything `status` shows, as data (``status --json``, for agents)."""
    from autoresearch.collect import collect
    from autoresearch.reports import best_kept
    from autoresearch.session import Session
    from autoresearch.stats import pooled_over

    session = Session.open_existing(config, config.getoption("tag"))
    done = [r for r in session.history if r.status != "interrupted"]
    counts = Counter(r.status for r in done)
    best = best_kept(done)
    sigma, df = pooled_over(done, config.get("metric")) if done else (None, 0)
    try:
        items, errors = collect(config, [config.rootdir / p for p in config.get("paths")], config.hook, warn=False)
    except UsageError:
        items, errors = [], []
    keys = {r.key for r in done}
    run = runner(config)
    return dict(tag=session.tag, branch=f"autoresearch/{session.tag}", metric=config.get("metric"),
                direction=config.get("direction"), counts={s: counts[s] for s in ("keep", "discard", "crash")},
                best=_brief(best) if best else None, noise=dict(sigma=sigma, df=df),
                runner=run, running=running(session, done) if run["alive"] and run["tag"] == session.tag else [],
                experiments=[_brief(r) for r in done], queued=[h.nodeid for h in items if h.key not in keys],
                collection_errors=[str(e) for e in errors])


def _brief(r: Any) -> dict[str, Any]:
    return dict(seq=r.seq, nodeid=r.nodeid, description=r.description, status=r.status,
                pruned=r.cause == "pruned", value=r.value, n=len(r.values), sigma=r.sigma,
                baseline_value=r.baseline_value, commit=r.commit, reason=r.reason, expectation=r.expectation,
                root_cause=r.root_cause, duration_s=round(r.duration, 3))


def status(config: Any) -> str:
    """At most ~40 lines: best so far, the last results, what is queued, the lessons' headline."""
    from autoresearch.collect import collect
    from autoresearch.reports import best_kept
    from autoresearch.session import Session
    from autoresearch.stats import floor, pooled_over

    if config.getoption("json"):
        import json

        return json.dumps(status_data(config), indent=2, default=str)
    session = Session.open_existing(config, config.getoption("tag"))
    tag, done = session.tag, [r for r in session.history if r.status != "interrupted"]
    counts = Counter(r.status for r in done)
    run = runner(config)
    alive = run["alive"] and run["tag"] == tag
    lines = [f"autoresearch status — tag {tag} (branch autoresearch/{tag}): {len(done)} experiments, "
             + ", ".join(f"{counts[s]} {s}" for s in ("keep", "discard", "crash") if counts[s])
             + (f"; runner alive (pid {run['pid']}, since {run['since']})" if alive else "; no runner at work")]
    for r in running(session, done) if alive else []:
        eta = f", about {fmt_s(r['eta_s'])} to go" if r["eta_s"] is not None else ""
        lines.append(f"running: #{r['seq']} {r['nodeid']} for {fmt_s(r['elapsed_s'])}{eta}")
    best, base = best_kept(done), next((r for r in done if r.is_baseline), None)
    if best is not None:
        gain = f" ({best.value - base.value:+.6f} from the baseline {base.value:.6f})" if base and base.value is not None else ""
        lines.append(f"best {best.metric} {best.shown}{gain}: {best.description} [{best.commit[:7]}]")
    if config.get("repeats") and done:
        sigma, df = pooled_over(done, config.get("metric"))
        lines.append(floor(sigma, df, config.get("metric"), config.get("noise_k"), config.get("repeats"),
                           config.get("max_repeats")))
    lines.append("last results:")
    for r in done[-12:]:
        value = r.shown if r.value is not None and r.status != "crash" else "—"
        delta = f"{r.value - r.baseline_value:+.6f}" if r.value is not None and r.baseline_value is not None and r.status != "crash" else ""
        extra = f" — {r.root_cause[:70]}" if r.status == "crash" else ""
        lines.append(f"  #{r.seq:<3} {r.status:<8} {value:>24} {delta:>10}  {r.description[:50]}{extra}")
    try:
        items, errors = collect(config, [config.rootdir / p for p in config.get("paths")], config.hook, warn=False)
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
    if not lessons.is_file():  # an imported run brings its lessons along
        lessons = session.run_dir / "imported" / lessons.name
    if lessons.is_file():
        rules = [line for line in lessons.read_text().splitlines() if line.startswith(("- NEVER", "- ALWAYS"))]
        lines.append("lessons: " + (f"{len(rules)} rule{'s' if len(rules) != 1 else ''}, e.g. {rules[0][2:][:110]}" if rules else "no rules yet"))
    return "\n".join(lines[:STATUS_LINES])


# -------------------------------------------------------------------------------------------


def _toml_value(text: str) -> Any:
    """A --set value: TOML (0.06, 8, "silu", true), else a Python literal (True, None, 1e-3, (1, 2)),
    else the text itself as a string (a bare word such as silu)."""
    import ast

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    except (ValueError, RecursionError):  # an integer of thousands of digits, brackets hundreds deep
        raise UsageError(f"--set value {text[:40]!r}...: too large or nested too deep (integers within ±2**63, "
                         "a few levels of lists)") from None
    try:
        value = ast.literal_eval(text)
        return list(value) if isinstance(value, tuple) else value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


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
    for item in opt.expect:  # val_bpb=< baseline, or val_bpb<baseline, val_bpb <= baseline - 1%
        m = re.match(r"\s*([A-Za-z_][\w.-]*)\s*(.*)$", item)
        rest = m.group(2).strip() if m else ""
        if rest.startswith("=") and not rest.startswith("=="):
            rest = rest[1:].strip()
        if not m or not rest:
            raise UsageError(f"--expect {item!r}: write METRIC EXPR, e.g. --expect 'val_bpb < baseline'")
        expect[m.group(1)] = rest
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
    from autoresearch.config import inside

    problem = inside(opt.dir)
    if problem:
        raise UsageError(f"--dir {problem}")
    folder = config.rootdir / opt.dir
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--dir {opt.dir}: not a folder")
    try:  # the file as it will be written: collection must accept it
        build(dict(raw), "new", 1, name)
    except CollectError as exc:
        raise UsageError(str(exc).removeprefix("new:1: ")) from None
    if opt.baseline not in ("best", "initial"):
        from autoresearch.collect import collect, is_commit

        names = {h.name for h in collect(config, [folder], config.hook, warn=False)[0]} if folder.is_dir() else set()
        if opt.baseline not in names and not (re.fullmatch(r"[0-9a-f]{7,40}", opt.baseline)
                                              and is_commit(config.rootdir, opt.baseline)):
            raise UsageError(f"--baseline {opt.baseline!r} names no hypothesis in {opt.dir} and no commit "
                             "(\"best\", \"initial\", a hypothesis' name or a commit hash)")
    path = folder / f"{name}.toml"
    if path.exists():
        raise UsageError(f"{path} already exists (choose another name with --name)")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {opt.description}\n" + tomli_w.dumps(raw))
    return path


# -------------------------------------------------------------------------------------------


def iterations_table(config: Any, done: list[Any], names: list[str]) -> list[str]:
    """seed 002's first table: each metric at the baseline and after each kept experiment, with
    arrows (doubled past a 25 % change) against the previous column, and its target."""
    targets = dict(config.get("targets") or {})
    kept = [r for r in done if r.status == "keep"]
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
    """A Markdown table cell: a | in it would start a new cell."""
    return str(text).replace("|", "\\|")


def fmt_s(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def report(config: Any) -> str:
    """seed 002's tables in Markdown: metrics against targets, parameters, compute and cost."""
    tag, done = load_reports(config)
    if not done:
        raise UsageError(f"run {tag!r} has no finished experiments yet")
    if config.getoption("json"):  # for agents: every finished experiment, whole
        import json

        from autoresearch.plugins.results_tsv import sidecar_entry

        return json.dumps(dict(tag=tag, metric=config.get("metric"), direction=config.get("direction"),
                               experiments=[sidecar_entry(r, config.get("memory_metric", "peak_vram_mb"))
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
        cells = [(r.shown if k == metric else f"{r.metrics[k]:.6g}") if k in r.metrics and r.status != "crash" else "—"
                 for k in names]
        if r.baseline_value is not None and r.value is not None and not r.is_baseline and r.status != "crash":
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
                out.append(f"| {r.seq} | {n} | {md(o)} | **{md(v)}** | {r.status if r.status == 'keep' else r.status + ' (reverted)'} |")
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
                cells.append(f"{md(o)} → **{md(v)}**{arrow}" + ("" if r.status == "keep" else " (reverted)"))
            out.append(f"| {p} | {md(original)} | " + " | ".join(cells) + " |")
        code = [", ".join(k for k in r.patch_kinds if k != "set") for r in changed]
        if any(code):  # replace and diff changes have no name: one row for them
            out.append("| (code: replace, diff) | | " + " | ".join(
                (c + ("" if r.status == "keep" else " (reverted)")) if c else "" for c, r in zip(code, changed)) + " |")
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
        plot(done, Path(plot_path), config.state_dir / "runs" / tag / "curves")
        out.append(f"\n![{metric} per experiment]({plot_path})")
    return "\n".join(out) + "\n"


def curves_of(report: Any, folder: Path) -> list[list[tuple[float, float]]]:
    """The learning curves the prune plugin kept for a report's runs (loss against share of budget)."""
    from autoresearch.plugins.prune import read_curve

    curves = (read_curve(folder / f"{Path(run.log_path).stem}.tsv") for run in report.runs if run.log_path)
    return [curve for curve in curves if len(curve) > 1]


def plot(reports: list[Any], path: Path, curves: Path | None = None) -> None:
    """The metric per experiment: kept green and labelled, discarded grey, crashes red, running best;
    each run a small dot, each mean with its standard error. Beside it, when the runs' learning
    curves were kept: the kept commits' curves (the tip's is the last of them) against the
    discarded candidates', the pruned ones ending where they were stopped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'autoresearch[plot]'") from None
    metric, minimize = reports[0].metric, reports[0].direction == "minimize"
    learned = {r.seq: curves_of(r, curves) for r in reports} if curves is not None and curves.is_dir() else {}
    if any(learned.values()):
        fig, (ax, lc) = plt.subplots(1, 2, figsize=(16, 5), gridspec_kw={"width_ratios": [3, 2]})
        tip = max((r.seq for r in reports if r.status == "keep" and learned.get(r.seq)), default=None)
        for r in reports:
            pruned = r.cause == "pruned"
            style = (dict(color="tab:red", ls="--", alpha=0.7) if pruned else
                     dict(color="tab:green", alpha=0.9 if r.seq == tip else 0.35, lw=2 if r.seq == tip else 1)
                     if r.status == "keep" else dict(color="grey", alpha=0.3, lw=0.8))
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
    best, xs, ys = None, [], []
    kept_seen, discard_seen, crash_seen, pruned_seen = 0, False, False, False
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)  # x in experiments, y in the axes' height
    for r in reports:
        if r.cause == "pruned":  # stopped early: no value, a mark along the top
            ax.scatter(r.seq, 0.97, transform=top, marker="x", color="tab:red", zorder=3,
                       label="pruned" if not pruned_seen else None)
            pruned_seen = True
            continue
        if r.status == "crash" or r.value is None:
            ax.axvline(r.seq, color="tab:red", alpha=0.3, lw=1)
            crash_seen = True
            continue
        color = "tab:green" if r.status == "keep" else "grey"
        if len(r.values) > 1:  # every run as a small dot, the mean with its standard error
            ax.scatter([r.seq] * len(r.values), r.values, color=color, s=8, alpha=0.4, zorder=2)
        if r.sigma and r.values:
            ax.errorbar(r.seq, r.value, yerr=r.sigma / len(r.values) ** 0.5, color=color, capsize=3, zorder=2)
        if r.status == "keep":
            ax.scatter(r.seq, r.value, color="tab:green", zorder=3, label="kept" if not kept_seen else None)
            kept_seen += 1  # labels staggered up and down, so neighbours do not overlap
            ax.annotate(r.description[:28], (r.seq, r.value), textcoords="offset points",
                        xytext=(4, 6 if kept_seen % 2 else -12), fontsize=7, rotation=20)
            best = r.value if best is None or (r.value < best if minimize else r.value > best) else best
        else:
            ax.scatter(r.seq, r.value, color="grey", alpha=0.6, zorder=2,
                       label="discarded" if not discard_seen else None)
            discard_seen = True
        if best is not None:
            xs.append(r.seq)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:green", alpha=0.7, label="best so far")
    base = next((r.value for r in reports if r.is_baseline and r.value is not None), None)
    if base is not None and best is not None and best != base:  # as the seed's notebook: between the baseline and the best
        pad = abs(base - best) * 0.15
        ax.set_ylim(min(base, best) - pad, max(base, best) + pad)
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
    plt.close(fig)

# -------------------------------------------------------------------------------------------


def calibrate(config: Any, say: Any) -> int:
    """Run the unmodified code (the checkout's HEAD) `--runs` times, seeds 0 to N-1, in a scratch
    worktree, and print the noise and what the verdict settings make of it. Nothing of a run
    (branch, ledger, results) is touched."""
    import math
    import os
    import shutil
    import subprocess
    import time
    from types import SimpleNamespace

    from autoresearch import stats
    from autoresearch.execute import classify, command, timeout
    from autoresearch.reports import ExitCode

    n = config.getoption("runs")
    if n < 2:
        raise UsageError(f"--runs {n}: calibrating needs at least 2 runs (5 or more give a usable sigma)")
    metric, k = config.get("metric"), config.get("noise_k", 2.0)
    repeats, max_repeats = config.get("repeats", 5), max(config.get("max_repeats", 5), config.get("repeats", 5))
    root = config.rootdir
    scratch = config.state_dir / "calibrate"
    work, logs = scratch / "worktree", scratch / "logs"
    shutil.rmtree(scratch, ignore_errors=True)
    logs.mkdir(parents=True)
    git = (root / ".git").exists()
    if git:
        from autoresearch.plugins.git import GitPlugin

        common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=root,
                                capture_output=True, text=True).stdout.strip()
        if common:  # the state folder stays untracked, as a run keeps it
            GitPlugin.exclude(Path(common), [config.get("state_dir")])
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)
        done = subprocess.run(["git", "worktree", "add", "--detach", "-q", str(work), "HEAD"], cwd=root,
                              capture_output=True, text=True)
        if done.returncode:
            raise UsageError(f"cannot make a scratch worktree of HEAD: {done.stderr.strip()} (commit your code first)")
        from autoresearch.execute import link_into

        link_into(config, work)
    else:
        state = config.state_dir.resolve()
        shutil.copytree(root, work, symlinks=True, ignore=lambda d, names: [x for x in names if Path(d, x).resolve() == state])
    budget, steps = config.get("budget"), config.get("budget_steps")
    say(f"calibrate: {n} runs of the unmodified code ({'HEAD' if git else 'the project'}), seeds 0 to {n - 1}, "
        f"budget {f'{budget:g} s' if budget else 'the workload default'}"
        + (f", {steps} steps" if steps else "") + f"; logs in {logs}")
    values, walls = [], []
    stand_in = SimpleNamespace(session=SimpleNamespace(config=config), nodeid="calibrate", name="calibrate")
    try:
        for seed in range(n):
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUTORESEARCH_SEED": str(seed), "AUTORESEARCH_TAG": "calibrate",
                   "AUTORESEARCH_EXPERIMENT": "calibrate"}
            if budget:
                env["AUTORESEARCH_TIME_BUDGET"] = f"{budget:g}"
            if steps:
                env["AUTORESEARCH_MAX_STEPS"] = str(steps)
            log = logs / f"run-{seed}.log"
            start = time.monotonic()
            from autoresearch.execute import run_command

            result = run_command(command(config, SimpleNamespace(workdir=work, seed=seed)), work, log, env,
                                 timeout(config))
            walls.append(time.monotonic() - start)
            found: dict[str, float] = {}
            for part in reversed(config.hook.autoresearch_parse_metrics(experiment=stand_in, log_path=log)):
                found.update(part or {})
            result = classify(result.__class__(**{**result.__dict__, "metrics": found}), metric)
            if not result.ok:
                say(f"  run {seed + 1}/{n} (seed {seed}): crash — {result.message or result.cause} (log: {log})")
                continue
            values.append(result.metrics[metric])
            say(f"  run {seed + 1}/{n} (seed {seed}): {metric} {values[-1]:.6f} in {walls[-1]:.1f} s")
    finally:
        if git:
            subprocess.run(["git", "worktree", "remove", "--force", str(work)], cwd=root, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if len(values) < 2:
        say(f"calibrate: {len(values)} of {n} runs printed {metric}: no noise to measure (see the logs above)")
        return ExitCode.STOPPED
    sigma, df = stats.pooled_sigma([values])
    assert sigma is not None
    mean = math.fsum(values) / len(values)
    wall = math.fsum(walls) / len(walls)
    say(f"{metric} {stats.fmt(mean, sigma, len(values))}: σ {sigma:.3g} run to run "
        f"(range {min(values):.6f} to {max(values):.6f}); {wall:.0f} s a run")
    say(stats.floor(sigma, df, metric, k, repeats, max_repeats))
    say(f"with noise_k {k:g}, repeats {repeats}, max_repeats {max_repeats}: improvements of "
        f"{stats.detectable(sigma, k, repeats, max_repeats):.2g} and more are kept about 4 times in 5")
    say(f"the choices, on a simulated loop of 40 null changes and 10 real gains of 2 σ ({CALIBRATE_SESSIONS} sessions):")
    say(f"  {'repeats, max_repeats':>21} {'detects':>9} {'2σ gains kept':>14} {'nulls kept':>11} "
        f"{'runs/decision':>14} {'experiments/hour':>17}")
    for r, m in sorted({(3, 3), (4, 5), (repeats, max_repeats), (5, 8), (8, 10)}):
        kept, nulls, per_decision = simulated(config, r, m, k)
        mark = "  <- these settings" if (r, m) == (repeats, max_repeats) else ""
        say(f"  {f'{r}, {m}':>21} {stats.detectable(sigma, k, r, m):>9.2g} {kept:>14.0%} {nulls:>11.1%} "
            f"{per_decision:>14.2f} {3600 / (max(wall, 1e-3) * per_decision):>17.1f}{mark}")
    if sigma == 0:
        say("the runs were identical: the plain comparison decides, and repeats cost time for nothing "
            "(set repeats = 1)")
    return ExitCode.OK


CALIBRATE_SESSIONS = 40


def simulated(config: Any, repeats: int, max_repeats: int, k: float) -> tuple[float, float, float]:
    """(share of 2-sigma gains kept, share of null changes kept, runs a decision) of the verdict
    plugin's rule with these settings, simulated: the rule works in units of sigma, so sigma 1."""
    import random

    from autoresearch.plugins.verdict import Rule, simulate

    rule = Rule(direction="minimize", noise_k=k, repeats=repeats, max_repeats=max(max_repeats, repeats))
    rng, effects = random.Random(0), [2.0 if i % 5 == 4 else 0.0 for i in range(50)]
    results = [x for _ in range(CALIBRATE_SESSIONS) for x in simulate(rule, rng, effects)]
    reals, nulls = [x for x in results if x[0]], [x for x in results if not x[0]]
    return (sum(x[1] for x in reals) / len(reals), sum(x[1] for x in nulls) / len(nulls),
            sum(x[2] for x in results) / len(results))
