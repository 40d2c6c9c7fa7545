"""``autoresearch report``: seed 002's report in Markdown (or every experiment as JSON), and the plot.

In order: the status (what ran, the tip the verdicts used and the best measured, the cost against
the budget, the queue), the experiments' metrics (which ones, and why, said), the summary of
iterations (kept, reverted, running), the parameters and code each changed, the compute and cost
per iteration, the key learnings (the distilled lessons and rules) and the next steps. Tables are
autoresearch/reporting.py's. Everything shown is escaped (:func:`autoresearch.reports.printable`):
a run's record may come from an archive another machine wrote.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.reporting import md  # noqa: F401 (report.md, as before)
from autoresearch.reports import ExitCode, Status, improvement, printable, results


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


def queue(config: Any, done: list[Any]) -> list[str]:
    """The hypotheses collected now that have not run in this run (as ``status`` lists them)."""
    return queued_after(config, {r.key for r in done})


def queued_after(config: Any, keys: set) -> list[str]:
    """The hypotheses collected now whose key is not in `keys`."""
    from autoresearch.collect import collect

    try:
        items, _ = collect(config, [config.rootdir / p for p in config.get("paths")], config.hook, warn=False)
    except UsageError:
        return []
    return [h.nodeid for h in items if h.key not in keys]


def tip_of(session: Any, done: list[Any]) -> Any:
    """The report of the commit the branch is at: what every later experiment was judged against."""
    kept = [r for r in done if r.status == Status.KEEP and r.commit]
    return next((r for r in reversed(kept) if r.commit == session.tip), kept[-1] if kept else None)


def in_flight(config: Any, session: Any) -> list[dict[str, Any]]:
    """Experiments started and not done: running now (a runner holds the lock for this run), or
    left by a stopped runner (they run again on --resume)."""
    return pending_now(config, session.tag, session.pending)


def pending_now(config: Any, tag: str, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger's runs in flight (`pending`), running or left unfinished as the lock tells now."""
    from autoresearch.commands.status import runner

    run = runner(config)
    alive = run["alive"] and run["tag"] == tag
    return [dict(seq=e.get("seq"), nodeid=e.get("nodeid", "?"),
                 state="running" if alive else "unfinished (runs again on --resume)") for e in pending]


def status_section(config: Any, session: Any, done: list[Any], running: list[dict], tip: Any, best: Any,
                   queued: list[str]) -> list[str]:
    """What ran, the tip and the best (told apart), the cost against the budget, the queue."""
    from collections import Counter

    from autoresearch.cost import budget_line

    counts = Counter(r.status for r in done)
    state = (f"running #{running[0]['seq']} {md(running[0]['nodeid'])}" if running and running[0]["state"] == "running"
             else f"{len(running)} unfinished (they run again on --resume)" if running else "no runner at work")
    out = ["## Status\n", f"- **Run**: {len(done)} experiments ("
           + ", ".join(f"{counts[s]} {s}" for s in (Status.KEEP, Status.DISCARD, Status.CRASH) if counts[s])
           + f"); {state}."]
    if tip is not None:
        out.append(f"- **Tip** (the commit later experiments were judged against): #{tip.seq} {md(tip.description)} "
                   f"— {tip.metric} {tip.shown}, commit {tip.commit[:7]}.")
    if best is not None and (tip is None or best.seq != tip.seq):
        gap = improvement(best.value, tip.value, best.direction) if tip is not None and tip.value is not None else 0.0
        behind = (f"; the tip is {gap:.6g} behind it: a later keep (simpler code within the noise, or a change "
                  "judged on another baseline) moved the tip past it" if gap > 0 else "; the tip measures the same")
        out.append(f"- **Best measured** (kept): #{best.seq} {md(best.description)} — {best.metric} {best.shown}, "
                   f"commit {best.commit[:7]}{behind}.")
    elif best is not None:
        out.append("- **Best measured** (kept): the tip itself.")
    out.append(f"- **Cost**: {budget_line(config, session.history)}.")
    out.append(f"- **Queue**: {len(queued)} hypothes{'e' if len(queued) != 1 else 'i'}s not yet run.")
    return out


_learned: list[Any] = [None, None]  # (the history and k it was made from, the lessons): one report's


def learned(history: list[Any], k: float, learn: Any) -> list[Any]:
    """``distil.learn(history, k)``, made once for the sections of one report that show it."""
    key = (id(history), len(history), k)
    if _learned[0] != key:
        _learned[:] = [key, learn(history, k)]
    return _learned[1]


def learnings_section(config: Any, history: list[Any]) -> list[str]:
    """Key learnings: the distilled lessons (one line per subject) and the ALWAYS/NEVER rules."""
    from autoresearch.distil import learn
    from autoresearch.rules import derive

    lessons = learned(history, config.get("noise_k", 2.0), learn)
    out = ["\n## Key learnings\n"]
    out += [f"- {md(x.text)} ({x.source})" for x in lessons[:10]] or ["- None yet: no experiment beyond the baseline."]
    if len(lessons) > 10:
        out.append(f"- … {len(lessons) - 10} more in {config.get('lessons_path', 'experiments/lessons.md')}")
    out += [f"- Rule: {md(rule.text)}" for rule in derive(history)]
    return out


def next_steps(config: Any, history: list[Any], queued: list[str]) -> list[str]:
    """What runs next (the queue), and what the lessons suggest trying."""
    from autoresearch.distil import BETTER, CRASHES, WORSE, learn

    out = ["\n## Next steps\n"]
    out += [f"- Queued: {md(n)}" for n in queued[:8]]
    if len(queued) > 8:
        out.append(f"- … and {len(queued) - 8} more queued")
    for x in learned(history, config.get("noise_k", 2.0), learn)[:6]:
        moved = len(x.key) == 1 and x.key[0][0] and x.key[0][1] in ("↑", "↓")  # one parameter, one way
        subject = " ".join(x.key[0]) if moved else x.subject
        if x.verdict == BETTER and moved:
            out.append(f"- {md(subject)} was better: try a step further the same way.")
        elif x.verdict == WORSE and moved:
            out.append(f"- {md(subject)} was worse: try the other direction.")
        elif x.verdict == CRASHES:
            out.append(f"- {md(subject)} crashed: fix the cause (the journal has the log's tail) before trying it again.")
    if len(out) == 1:
        out.append("- Nothing queued: write hypotheses (`autoresearch new`), combining near misses or trying "
                   "the opposite of what failed.")
    return out


def report(config: Any) -> str:
    """The report in Markdown (``--json``: every finished experiment, whole).

    The Markdown is kept in the run's index (autoresearch/runindex.py) with what was live when it
    was made (the runs in flight, the queue): read back while the ledger, the settings, the code and
    those are unchanged. Not with --json or --plot, nor when a plugin that is not built in adds to it."""
    from autoresearch import runindex
    from autoresearch.pluginmanager import BUILTIN, ESSENTIAL

    tag = config.getoption("tag")
    folder = runindex.run_dir(config, tag)
    extras = {impl.plugin_name for impl in config.hook.autoresearch_report_extra.get_hookimpls()}
    if config.getoption("json") or config.getoption("plot") or folder is None or extras - {*ESSENTIAL, *BUILTIN}:
        return make_report(config)
    bound = runindex.stamp(folder, "report", config)
    known = runindex.read(folder, "report", bound) if bound else None
    if known is not None and known["live"] == live(config, folder.name, known["pending"], set(known["keys"])):
        return known["text"]
    made: dict[str, Any] = {}
    text = make_report(config, made)
    if bound and made:
        import json

        runindex.write(folder, "report", bound, json.dumps({"data": dict(text=text, **made)}, default=str),
                       lambda: runindex.stamp(folder, "report", config))
    return text


def live(config: Any, tag: str, pending: list[dict[str, Any]], keys: set) -> Any:
    """What a report shows that is not in the ledger: the runs in flight as the lock tells, the queue."""
    import json

    return json.loads(json.dumps(dict(running=pending_now(config, tag, pending), queued=queued_after(config, keys)),
                                 default=str))


def make_report(config: Any, made: dict[str, Any] | None = None) -> str:
    """The report, made from the ledger; `made` (if given) receives what :func:`report` keeps with it."""
    from autoresearch.commands.status import open_run

    session = open_run(config, config.getoption("tag"))
    tag, done = session.tag, results(session.history)
    if not done:
        raise UsageError(f"run {tag!r} has no finished experiments yet")
    if config.getoption("json"):  # for agents: every finished experiment, whole
        import json

        from autoresearch.cost import data
        from autoresearch.reports import record

        return json.dumps(dict(tag=tag, metric=config.get("metric"), direction=config.get("direction"),
                               cost=data(config, session.history),
                               experiments=[record(r, config.get("memory_metric", "peak_vram_mb"))
                                            for r in done]), indent=2, default=str)
    keys = {r.key for r in done}
    now = live(config, session.tag, session.pending, keys)
    text = "\n".join(printable(line) for line in "\n".join(markdown(config, session, done, now)).split("\n")) + "\n"
    if made is not None:
        made.update(pending=session.pending, keys=sorted(k for k in keys if isinstance(k, str)), live=now)
    return text


def markdown(config: Any, session: Any, done: list[Any], now: dict[str, Any] | None = None) -> list[str]:
    """The report's sections in order, as Markdown lines; `now`: what is live (:func:`live`), if known."""
    from autoresearch.reporting import chosen_metrics, cost_tables, iterations_table, metrics_table, parameters_table
    from autoresearch.reports import best_kept
    from autoresearch.stats import floor, pooled_over

    metric = done[0].metric
    names, which = chosen_metrics(config, done)
    tip, best = tip_of(session, done), best_kept(done)
    running, queued = (now["running"], now["queued"]) if now else (in_flight(config, session), queue(config, done))
    sigma, df = pooled_over(done, metric)
    noise = floor(sigma, df, metric, config.get("noise_k"), config.get("repeats"), config.get("max_repeats")) \
        if config.get("repeats") else ""
    from autoresearch.drift import line
    from autoresearch.objectives import baseline_unmet

    moved = line(done, metric, config.get("noise_window", 40))  # σ or the tip's level changed: one line
    noise += f"\n\n{moved[0].upper() + moved[1:]}" if moved and noise else ""
    unmet = baseline_unmet(config, next((r for r in done if r.is_baseline and r.status == Status.KEEP), None))
    targets = config.get("targets") or {}
    out = [f"# autoresearch report — {session.tag}\n", *([noise[0].upper() + noise[1:] + ".\n"] if noise else []),
           *status_section(config, session, done, running, tip, best, queued),
           *([f"\nTargets the baseline misses: {md('; '.join(unmet))}.\n"] if unmet else []), "\n## Experiments\n", which,
           "The expected column is each hypothesis's own expectation"
           + (f"; targets ({md(', '.join(f'{m} {e}' for m, e in targets.items()))}) are settings every keep "
              "must meet." if targets else ".") + "\n",
           *metrics_table(config, done, running, names, tip, best),
           *iterations_table(config, done, running, names), *parameters_table(done),
           *cost_tables(config, done, session.history), *learnings_section(config, session.history),
           *next_steps(config, session.history, queued)]
    for extra in config.hook.autoresearch_report_extra(config=config):
        if extra:
            out.append("\n" + str(extra))
    plot_path = config.getoption("plot")
    if plot_path:
        from autoresearch.commands.plot import plot

        plot(done, Path(plot_path), config.state_dir / "runs" / session.tag / "curves", tip_seq=tip.seq if tip else None)
        out.append(f"\n![{metric} per experiment]({plot_path})")
    return out
