"""``autoresearch status``: the latest run in at most ~40 lines, or as JSON (``--json``).

One computation, :func:`status_data`; the text is rendered from it (:func:`render`). Everything
shown is escaped (:func:`autoresearch.reports.printable`): a run's record may come from an archive.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.outcomes import ExitCode, MEASURED, Status, printable

STATUS_LINES = 40


def main(config: Any) -> int:
    if config.getoption("follow"):
        interval = config.getoption("interval")
        if not 0 < interval <= 3600:
            raise UsageError(f"--interval {interval:g}: give seconds between looks, more than 0 and at most 3600")
        return follow(config, interval)
    print(status(config))
    return ExitCode.OK


def __getattr__(name: str) -> Any:
    if name == "fmt_s":  # status.fmt_s, as before (autoresearch.live's), imported when asked for
        from autoresearch.live import fmt_s

        return fmt_s
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_reports(config: Any) -> tuple[str, list[Any]]:
    """The tag and the finished reports of a run (--tag, default the latest), read from its ledger."""
    from autoresearch.reports import results

    session = open_run(config, config.getoption("tag"))
    return session.tag, results(session.history)


_opened: dict[tuple, Any] = {}  # (ledger, its size and time) -> the session read from it, in this process


def open_run(config: Any, tag: str | None) -> Any:
    """:meth:`Session.open_existing`, read once per process while its ledger stays as it was:
    ``report`` and the plugins' report hooks (telemetry) read the same run."""
    from autoresearch import runindex
    from autoresearch.session import Session

    folder = runindex.run_dir(config, tag)
    try:
        st = (folder / "ledger.jsonl").stat() if folder is not None else None
    except OSError:
        st = None
    key = (str(folder), st.st_size, st.st_mtime_ns, st.st_ino) if st is not None else None
    if key is not None and key in _opened and _opened[key].config is config:
        return _opened[key]
    session = Session.open_existing(config, tag)
    _opened.clear()
    if key is not None:
        _opened[key] = session
    return session


def runner(config: Any) -> dict[str, Any]:
    """Whether a runner holds the repository's lock now: its pid, tag and start, as it wrote them."""
    from autoresearch.lock import Lock

    holder = Lock.read(config.state_dir / "lock", wait=0)
    return dict(alive=Lock.held(config.state_dir / "lock"), pid=holder.get("pid"), tag=holder.get("tag"),
                since=holder.get("since"))


def running(config: Any, run_dir: Any, pending: list[dict[str, Any]], mean: float | None) -> list[dict[str, Any]]:
    """The experiments in flight (started in the ledger, not done): elapsed time, the latest
    progress their log shows (step, share of the budget, loss) and an ETA (autoresearch.live);
    `mean` is the mean duration of the finished ones."""
    from autoresearch.live import in_flight

    return [in_flight(config, run_dir, entry, mean) for entry in pending]


def status_data(config: Any) -> dict[str, Any]:
    """Everything `status` shows, as data (``status --json``, for agents): what the ledger says,
    from the run's index when it matches the ledger (:func:`recorded`), and what is live now (the
    runner, the runs in flight, the queue)."""
    from autoresearch import runindex

    tag = config.getoption("tag")
    known = runindex.cached(config, tag, "status", lambda: recorded(config, tag))
    queue_error = None
    try:
        from autoresearch.queueindex import queue

        items, errors = queue(config)
    except UsageError as exc:
        items, errors, queue_error = [], [], str(exc)
    run = runner(config)
    pending = known.pop("pending")
    keys = set(known.pop("keys")) | ({e.get("key") for e in pending} if run["alive"] else set())  # in flight: not queued
    mean, tag = known.pop("mean"), known["tag"]
    live = dict(runner=run, running=running(config, config.state_dir / "runs" / tag, pending, mean)
                if run["alive"] and run["tag"] == tag else [])
    queued = dict(queued=[nodeid for nodeid, key in items if key not in keys], queue_error=queue_error,
                  collection_errors=errors)
    order = ("tag", "branch", "metric", "direction", "counts", "best", "baseline", "noise", "drift", "wasted",
             "runner", "running", "experiments", "queued", "queue_error", "collection_errors")
    both = {**known, **live, **queued}
    return {**{k: both[k] for k in order}, **{k: v for k, v in both.items() if k not in order}}


def recorded(config: Any, tag: str | None) -> dict[str, Any]:
    """What `status` shows that the run's ledger alone determines (with the settings), replayed
    from it; plus what the live part needs: the runs in flight (pending), the finished hypotheses'
    keys and the mean duration of a finished run."""
    from autoresearch.objectives import baseline_unmet
    from autoresearch.reports import best_kept, results
    from autoresearch.session import Session
    from autoresearch.stats import pooled_over

    session = Session.open_existing(config, tag)
    done = results(session.history)
    counts = Counter("setup crash" if r.setup_crash else r.status for r in done)  # a broken setup, apart
    best = best_kept(done)
    base = next((r for r in done if r.is_baseline), None)
    sigma, df = pooled_over(done, config.get("metric")) if done else (None, 0)
    finished = [r.duration for r in done if r.duration and r.status in MEASURED]
    return dict(tag=session.tag, branch=f"autoresearch/{session.tag}", metric=config.get("metric"),
                direction=config.get("direction"), counts={s: counts[s] for s in ("keep", "discard", "crash", "setup crash")},
                best=_brief(best) if best else None, baseline=_brief(base) if base else None,
                noise=dict(sigma=sigma, df=df), drift=drift_line(config, done), wasted=wasted_line(session),
                experiments=[_brief(r) for r in done], lessons=lesson_rules(config, session),
                unmet_targets=baseline_unmet(config, next((r for r in done if r.is_baseline and r.status == Status.KEEP), None)),
                **cost_and_lessons(config, session), pending=session.pending, keys=sorted({r.key for r in done if isinstance(r.key, str)}),
                mean=sum(finished) / len(finished) if finished else None)


def wasted_line(session: Any) -> str:
    """With -n > 1: the runs thrown away (stale, cancelled, surplus), from the ledger ("" for none recorded)."""
    from autoresearch.batches import waste_of

    waste = waste_of(session.run_dir)
    return waste.line() if waste is not None else ""


def drift_line(config: Any, done: list) -> str:
    """A change of σ or of the tip's level beyond the noise, in one line ("" for none)."""
    from autoresearch.drift import line

    return line(done, config.get("metric"), config.get("noise_window", 40)) if done else ""


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
    tag, done, counts, run = data["tag"], data["experiments"], data["counts"], data["runner"]
    alive = run["alive"] and run["tag"] == tag

    tally = ", ".join(f"{counts[s]} {s}" for s in ("keep", "discard", "crash", "setup crash") if counts.get(s))
    lines = [f"autoresearch status — tag {tag} (branch autoresearch/{tag}): {len(done)} "
             f"experiment{'' if len(done) == 1 else 's'}" + (f", {tally}" if tally else "")
             + (f"; runner alive (pid {run['pid']}, since {run['since']})" if alive else "; no runner at work")]
    if data["running"]:
        from autoresearch.live import describe

        lines += [f"running: {describe(r)}" for r in data["running"]]
    best, base = data["best"], data["baseline"]
    if best is not None:
        gain = (f" ({best['value'] - base['value']:+.6f} from the baseline {base['value']:.6f})"
                if base and base["value"] is not None else "")
        lines.append(f"best {best['metric']} {best['shown']}{gain}: {best['description']} [{best['commit'][:7]}]")
    if data.get("unmet_targets"):
        lines.append(f"targets the baseline misses: {'; '.join(data['unmet_targets'])}")
    if config.get("repeats") and done:
        from autoresearch.noisefloor import floor

        lines.append(floor(data["noise"]["sigma"], data["noise"]["df"], data["metric"], config.get("noise_k"),
                           config.get("repeats"), config.get("max_repeats")))
        if data.get("drift"):
            lines.append(data["drift"])
    if data.get("wasted"):
        lines.append(data["wasted"])
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


def follow(config: Any, interval: float = 2.0) -> int:
    """``status --follow``: on a terminal, the status drawn again in place every `interval`
    seconds; piped, one line per change. Ends when no runner works on the run (said in a last
    line), or at Ctrl-C, cleanly."""
    import sys
    import time

    from autoresearch.live import summary

    tty = sys.stdout.isatty()
    drawn, last = 0, None
    try:
        while True:
            data = status_data(config)
            alive = data["runner"]["alive"] and data["runner"]["tag"] == data["tag"]
            if tty:
                text = render(config, data)
                sys.stdout.write("\033[1A\r\033[K" * drawn + "\r\033[K" + text.replace("\n", "\033[K\n") + "\033[J\n")
                drawn = text.count("\n") + 1
            else:
                key, line = summary(data)
                if key != last:
                    print(printable(line), flush=True)
                    last = key
            sys.stdout.flush()
            if not alive:
                print(f"no runner at work on {data['tag']}: the run has ended (autoresearch run --resume continues it)",
                      flush=True)
                return ExitCode.OK
            time.sleep(interval)
    except KeyboardInterrupt:
        from autoresearch import interrupts

        interrupts.take()  # Ctrl-C is how one stops following: handled, not the command's stop
        print("\nstopped following (the run goes on)" if tty else "stopped following (the run goes on)", flush=True)
        return ExitCode.OK
