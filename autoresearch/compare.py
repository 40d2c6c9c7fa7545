"""What ``show`` and ``diff`` compare: one row per experiment (what it changed, what it measured,
how it ended), read from the runs' ledgers, and the configuration of a commit.

A row names every change, whatever its patch kind: a constant ``set`` (or any kind that names
its changes) as ``NAME: new value``; a code change (``replace``, ``diff``, a plugin's kind that
names nothing) as its description with its line counts, ``add QK-norm (+4 −1)``. Each metric is
its mean over the experiment's runs with a standard error and n: the objective's error from the
run's pooled noise (as every verdict used), another metric's from its own runs' spread.
"""
from __future__ import annotations

import math
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.reports import Cause, Report, Status, results

#: what ``--status`` may name: the outcomes, and pruned (a discard stopped early)
STATUS_WORDS = ("keep", "discard", "crash", "interrupted", "pruned")


def tags_here(config: Any) -> list[str]:
    """Every run with a ledger in the state folder, oldest first."""
    found = [(p.stat().st_mtime, p.parent.name) for p in (config.state_dir / "runs").glob("*/ledger.jsonl")]
    return [tag for _, tag in sorted(found)]


def load(config: Any, tag: str | None, every: bool = False) -> list[tuple[str, list[Report]]]:
    """(tag, finished reports) of one run (--tag, default the latest) or, `every`, of each run here."""
    from autoresearch.session import Session

    if every:
        return [(t, results(Session.open_existing(config, t).history)) for t in tags_here(config)]
    session = Session.open_existing(config, tag)
    return [(session.tag, results(session.history))]


def code_change(r: Report) -> str:
    """A change no parameter names (replace, diff, ...): its description and line counts; "" for none."""
    if r.is_baseline or not {*r.patch_kinds} - {"set"}:
        return ""
    return f"{r.description} (+{r.lines_added} −{r.lines_removed})"


def _se(values: list[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def metric_cells(r: Report) -> dict[str, dict[str, Any]]:
    """metric -> {mean, se, n}: the objective with the run's pooled noise, others with their own."""
    out = {}
    if r.status == Status.CRASH:
        return out
    measured = [run.metrics for run in r.runs if run.ok]
    for name, mean in r.metrics.items():
        values = [m[name] for m in measured if name in m]
        n = len(values) or 1
        if name == r.metric and r.sigma:
            se = r.sigma / math.sqrt(n)
        else:
            se = _se(values)
        out[name] = dict(mean=mean, se=se, n=n)
    return out


def row(tag: str, r: Report) -> dict[str, Any]:
    """One experiment, as every format shows it."""
    return dict(tag=tag, seq=r.seq, name=r.name, nodeid=r.nodeid, description=r.description,
                status=str(Cause.PRUNED) if r.pruned else str(r.status), expectation=r.expectation or "",
                params={n: new for n, _, new in r.changes}, code=code_change(r), metrics=metric_cells(r),
                metric=r.metric, direction=r.direction, commit=r.commit, duration_s=round(r.duration, 3),
                reason=r.reason)


def fmt_metric(cell: dict[str, Any] | None) -> str:
    """``1.2345 ± 0.0012 (n=3)``; ``1.22`` for one run without noise; ``—`` for none."""
    if not cell:
        return "—"
    mean, se, n = cell["mean"], cell["se"], cell["n"]
    if not se:  # one run, or runs that all printed the same
        return f"{mean:.6g}" + (f" (n={n})" if n > 1 else "")
    return f"{mean:.6g} ± {se:.2g} (n={n})"


def select(rows: list[dict[str, Any]], keyword: str | None, statuses: str | None) -> list[dict[str, Any]]:
    """The rows -k (over the node id and description) and --status keep,discard,... select."""
    if statuses:
        wanted = [w.strip() for w in statuses.split(",") if w.strip()]
        bad = [w for w in wanted if w not in STATUS_WORDS]
        if bad or not wanted:
            raise UsageError(f"--status {statuses}: {bad[0] if bad else 'nothing'} is not a status "
                             f"(give a comma-separated list of {', '.join(STATUS_WORDS)})")
        rows = [r for r in rows if r["status"] in wanted or (r["status"] == Cause.PRUNED and Status.DISCARD in wanted)]
    if keyword:
        from types import SimpleNamespace

        from autoresearch.keywords import keyword_matcher

        match = keyword_matcher(keyword)
        rows = [r for r in rows if match(SimpleNamespace(nodeid=f"{r['nodeid']} {r['description']}", tags=()))]
    return rows


def columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], bool]:
    """(parameter names, metric names, whether any code change): the table's changing columns.
    The objective first among the metrics, the others in alphabetical order."""
    params = sorted({p for r in rows for p in r["params"]})
    objective = [r["metric"] for r in rows[:1]]
    metrics = objective + sorted({m for r in rows for m in r["metrics"]} - set(objective))
    return params, metrics, any(r["code"] for r in rows)


def sort(rows: list[dict[str, Any]], key: str | None) -> list[dict[str, Any]]:
    """--sort COL (``-COL``: descending): a metric by its mean, a parameter by its value, or one of
    seq, name, status, expectation, tag, duration; missing values last."""
    if not key:
        return rows
    reverse, name = key.startswith("-"), key.lstrip("-")
    params, metrics, _ = columns(rows)
    fixed = {"seq": "seq", "#": "seq", "name": "name", "status": "status", "expectation": "expectation",
             "tag": "tag", "duration": "duration_s", "description": "description"}
    if name in metrics:
        get = lambda r: (r["metrics"].get(name) or {}).get("mean")  # noqa: E731
    elif name in params:
        def get(r):
            value = r["params"].get(name)
            try:
                return float(value) if value is not None else None
            except ValueError:
                return value
    elif name in fixed:
        get = lambda r: r[fixed[name]]  # noqa: E731
    else:
        raise UsageError(f"--sort {key}: no such column (columns: {', '.join([*fixed, *params, *metrics])}; "
                         "-COL sorts descending)")
    present = [r for r in rows if get(r) is not None]
    missing = [r for r in rows if get(r) is None]
    try:
        present.sort(key=get, reverse=reverse)
    except TypeError:  # numbers and words in one column: as text
        present.sort(key=lambda r: str(get(r)), reverse=reverse)
    return present + missing


def configuration_at(config: Any, commit: str) -> dict[str, str]:
    """The configuration the code at `commit` runs with: every patch kind's parameters of the
    editable files there (``set``: every module-level constant with a literal value)."""
    from autoresearch.gitcmd import ask
    from autoresearch.kinds import registry
    from autoresearch.patches import configuration

    texts = {}
    for name in config.editable:
        proc = ask("show", f"{commit}:{name}", cwd=config.rootdir)
        if proc.returncode == 0:
            texts[name] = proc.stdout
    return configuration(texts, registry(config))


def find(config: Any, spec: str, runs: list[tuple[str, list[Report]]]) -> tuple[str, Report]:
    """An experiment named on the command line: ``#3`` or ``3`` (its number), its name or node id,
    ``TAG:3`` or ``TAG:NAME`` (in another run), or a tag (that run's tip: its last kept experiment)."""
    tags = tags_here(config)
    tag, _, rest = spec.rpartition(":") if ":" in spec and spec.split(":")[0] in tags else ("", "", spec)
    if not tag and spec in tags:
        return spec, _tip(config, spec)
    pool = [(t, r) for t, reports in (load(config, tag) if tag else runs) for r in reports]
    wanted = rest.lstrip("#")
    hits = [(t, r) for t, r in pool if (wanted.isdigit() and r.seq == int(wanted)) or r.name == rest or r.nodeid == rest]
    if not hits:
        raise UsageError(f"{spec}: no such experiment (give its number, #3, its name, TAG:NAME, or a tag; "
                         f"runs here: {', '.join(tags) or 'none'})")
    return hits[-1]


def _tip(config: Any, tag: str) -> Report:
    _, reports = load(config, tag)[0]
    kept = [r for r in reports if r.status == Status.KEEP]
    if not kept:
        raise UsageError(f"{tag}: the run kept nothing yet (name an experiment instead)")
    return kept[-1]

