"""``autoresearch status``: the latest run in at most ~40 lines, or as JSON (``--json``).

One computation, :func:`status_data`; the text is rendered from it (:func:`render`). Everything
shown is escaped (:func:`autoresearch.reports.printable`): a run's record may come from an archive.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.reports import ExitCode, MEASURED, Status, printable, results

STATUS_LINES = 40


def main(config: Any) -> int:
    print(status(config))
    return ExitCode.OK


def load_reports(config: Any) -> tuple[str, list[Any]]:
    """The tag and the finished reports of a run (--tag, default the latest), read from its ledger."""
    from autoresearch.session import Session

    session = Session.open_existing(config, config.getoption("tag"))
    return session.tag, results(session.history)


def runner(config: Any) -> dict[str, Any]:
    """Whether a runner holds the repository's lock now: its pid, tag and start, as it wrote them."""
    from autoresearch.lock import Lock

    holder = Lock.read(config.state_dir / "lock", wait=0)
    return dict(alive=Lock.held(config.state_dir / "lock"), pid=holder.get("pid"), tag=holder.get("tag"),
                since=holder.get("since"))


def running(session: Any, done: list[Any]) -> list[dict[str, Any]]:
    """The experiments in flight (started in the ledger, not done), with elapsed time and an ETA from
    the mean duration of the finished ones."""
    import time

    finished = [r.duration for r in done if r.duration and r.status in MEASURED]
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
    done = results(session.history)
    counts = Counter(r.status for r in done)
    best = best_kept(done)
    base = next((r for r in done if r.is_baseline), None)
    sigma, df = pooled_over(done, config.get("metric")) if done else (None, 0)
    queue_error = None
    try:
        items, errors = collect(config, [config.rootdir / p for p in config.get("paths")], config.hook, warn=False)
    except UsageError as exc:
        items, errors, queue_error = [], [], str(exc)
    keys = {r.key for r in done}
    run = runner(config)
    return dict(tag=session.tag, branch=f"autoresearch/{session.tag}", metric=config.get("metric"),
                direction=config.get("direction"), counts={s: counts[s] for s in ("keep", "discard", "crash")},
                best=_brief(best) if best else None, baseline=_brief(base) if base else None,
                noise=dict(sigma=sigma, df=df),
                runner=run, running=running(session, done) if run["alive"] and run["tag"] == session.tag else [],
                experiments=[_brief(r) for r in done], queued=[h.nodeid for h in items if h.key not in keys],
                queue_error=queue_error, collection_errors=[str(e) for e in errors],
                lessons=lesson_rules(config, session), **cost_and_lessons(config, session))


def cost_and_lessons(config: Any, session: Any) -> dict[str, Any]:
    """The run's cost against its budget (autoresearch/cost.py) and its distilled lessons
    (autoresearch/distil.py, one line per subject), as report shows them."""
    from autoresearch import cost
    from autoresearch.distil import learn

    return dict(cost=cost.data(config, session.history),
                learned=[x.text for x in learn(session.history, config.get("noise_k", 2.0))])


def _brief(r: Any) -> dict[str, Any]:
    return dict(seq=r.seq, nodeid=r.nodeid, description=r.description, status=r.status, metric=r.metric,
                pruned=r.cause == "pruned", value=r.value, shown=r.shown, n=len(r.values), sigma=r.sigma,
                baseline_value=r.baseline_value, commit=r.commit, reason=r.reason, expectation=r.expectation,
                root_cause=r.root_cause, duration_s=round(r.duration, 3))


def lesson_rules(config: Any, session: Any) -> list[str]:
    """The rules the run's results support (ALWAYS / NEVER), drawn from its ledger as lessons.md
    draws them (autoresearch.rules), never read back out of the prose."""
    from autoresearch.rules import derive

    return [rule.text for rule in derive(session.history)]


def status(config: Any) -> str:
    """``status`` as the command prints it: JSON with ``--json``, else the text."""
    if config.getoption("json"):
        import json

        return json.dumps(status_data(config), indent=2, default=str)
    return render(config, status_data(config))


def render(config: Any, data: dict[str, Any]) -> str:
    """At most ~40 lines: best so far, the last results, what is queued, the lessons' headline."""
    from autoresearch.stats import floor

    tag, done, counts, run = data["tag"], data["experiments"], data["counts"], data["runner"]
    alive = run["alive"] and run["tag"] == tag
    lines = [f"autoresearch status — tag {tag} (branch autoresearch/{tag}): {len(done)} experiments, "
             + ", ".join(f"{counts[s]} {s}" for s in ("keep", "discard", "crash") if counts[s])
             + (f"; runner alive (pid {run['pid']}, since {run['since']})" if alive else "; no runner at work")]
    for r in data["running"]:
        eta = f", about {fmt_s(r['eta_s'])} to go" if r["eta_s"] is not None else ""
        lines.append(f"running: #{r['seq']} {r['nodeid']} for {fmt_s(r['elapsed_s'])}{eta}")
    best, base = data["best"], data["baseline"]
    if best is not None:
        gain = (f" ({best['value'] - base['value']:+.6f} from the baseline {base['value']:.6f})"
                if base and base["value"] is not None else "")
        lines.append(f"best {best['metric']} {best['shown']}{gain}: {best['description']} [{best['commit'][:7]}]")
    if config.get("repeats") and done:
        lines.append(floor(data["noise"]["sigma"], data["noise"]["df"], data["metric"], config.get("noise_k"),
                           config.get("repeats"), config.get("max_repeats")))
    if data.get("cost"):
        lines.append(f"cost: {data['cost']['line']}")
    lines.append("last results:")
    for r in done[-12:]:
        shown = r["value"] is not None and r["status"] != Status.CRASH
        value = r["shown"] if shown else "—"
        delta = f"{r['value'] - r['baseline_value']:+.6f}" if shown and r["baseline_value"] is not None else ""
        extra = f" — {r['root_cause'][:70]}" if r["status"] == Status.CRASH else ""
        lines.append(f"  #{r['seq']:<3} {r['status']:<8} {value:>24} {delta:>10}  {r['description'][:50]}{extra}")
    if data["queue_error"]:
        lines.append(f"queued: unknown ({data['queue_error']})")
    queued, errors = data["queued"], data["collection_errors"]
    lines.append(f"queued ({len(queued)}):" + ("" if queued else " nothing — write hypotheses with autoresearch new"))
    lines += [f"  {nodeid}" for nodeid in queued[:8]]
    if len(queued) > 8:
        lines.append(f"  … and {len(queued) - 8} more")
    if errors:
        lines.append(f"  {len(errors)} file(s) with errors, e.g. {errors[0]} (autoresearch run --collect-only)")
    rules, learned = data["lessons"], data.get("learned") or []
    if learned:
        lines.append(f"lessons: {len(learned)}, e.g. {learned[0][:110]}")
    if rules is not None:
        lines.append("rules: " + (f"{len(rules)}, e.g. {rules[0][:110]}" if rules else "no rules yet"))
    return "\n".join(printable(line) for line in lines[:STATUS_LINES])


def fmt_s(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
