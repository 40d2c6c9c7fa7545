"""``autoresearch diff A B``: two experiments side by side (as ``dvc exp diff``): their
parameters, their metrics with the difference B − A and whether it is beyond the noise, and the
code diff between their commits.

A and B are experiments (``#3``, a name, ``TAG:NAME``) or tags (that run's tip). The parameters
are each commit's whole configuration (:func:`autoresearch.compare.configuration_at`), those
that differ shown. A difference is beyond the noise when it is at least ``noise_k`` standard
errors of a difference of means, the metric's run-to-run noise pooled over the runs involved
(:func:`autoresearch.stats.pooled_over`), as every verdict is decided.
"""
from __future__ import annotations

import json
import math
from typing import Any

from autoresearch.compare import configuration_at, find, fmt_metric, load, metric_cells
from autoresearch.errors import UsageError
from autoresearch.reports import MINIMIZE, ExitCode, Report, printable


def main(config: Any) -> int:
    print(diff(config), end="")
    return ExitCode.OK


def noise_verdict(config: Any, metric: str, a: dict | None, b: dict | None, pool: list[Report]) -> dict[str, Any]:
    """The difference B − A of one metric, its standard error and whether it is beyond the noise."""
    from autoresearch.stats import pooled_over

    if not a or not b:
        return dict(delta=None, se=None, beyond_noise=None)
    delta = b["mean"] - a["mean"]
    sigma, _ = pooled_over(pool, metric)
    if sigma is None:
        return dict(delta=delta, se=None, beyond_noise=None)  # nothing ran twice: the noise is unknown
    se = sigma * math.sqrt(1 / a["n"] + 1 / b["n"])
    k = config.get("noise_k")
    beyond = abs(delta) > 0 if se == 0 else abs(delta) >= k * se
    return dict(delta=delta, se=se, beyond_noise=beyond)


def code_diff(config: Any, a: str, b: str) -> str:
    """``git diff A B`` of the editable files, with git's programs (external diff, textconv) off."""
    from autoresearch.gitcmd import ask

    if not a or not b or a == b:
        return ""
    proc = ask("diff", "--no-color", "--no-ext-diff", "--no-textconv", a, b, "--", *config.editable,
               cwd=config.rootdir)
    if proc.returncode:
        raise UsageError(f"git diff {a[:7]} {b[:7]}: {proc.stderr.strip()[:200] or 'failed'} (is the run's "
                         "branch here? autoresearch import brings an exported one)")
    return proc.stdout


def diff_data(config: Any) -> dict[str, Any]:
    runs = load(config, config.getoption("tag"))
    (tag_a, a), (tag_b, b) = find(config, config.getoption("a"), runs), find(config, config.getoption("b"), runs)
    by_tag = dict(runs)
    for t in {tag_a, tag_b} - {*by_tag}:
        by_tag.update(load(config, t))
    pool = [r for reports in by_tag.values() for r in reports]  # the noise: pooled over the runs involved
    conf_a = configuration_at(config, a.commit) if a.commit else {}
    conf_b = configuration_at(config, b.commit) if b.commit else {}
    params = {n: (conf_a.get(n), conf_b.get(n)) for n in sorted({*conf_a, *conf_b}) if conf_a.get(n) != conf_b.get(n)}
    cells_a, cells_b = metric_cells(a), metric_cells(b)
    names = [a.metric] + sorted({*cells_a, *cells_b} - {a.metric})
    metrics = {m: dict(a=cells_a.get(m), b=cells_b.get(m), **noise_verdict(config, m, cells_a.get(m),
                                                                           cells_b.get(m), pool)) for m in names}
    side = lambda t, r: dict(tag=t, seq=r.seq, name=r.name, description=r.description, status=str(r.status),  # noqa: E731
                             expectation=r.expectation, commit=r.commit)
    return dict(a=side(tag_a, a), b=side(tag_b, b), metric=a.metric, direction=a.direction, parameters=params,
                metrics=metrics, code=code_diff(config, a.commit, b.commit)
                if config.getoption("code") and a.commit and b.commit else None)  # no commit: nothing ran


def diff(config: Any) -> str:
    data = diff_data(config)
    if config.getoption("json"):
        return json.dumps(data, indent=2, default=str) + "\n"
    a, b = data["a"], data["b"]
    lines = [f"A: {a['tag']} #{a['seq']} {a['name']} — {a['description']} [{a['commit'][:7]}] {a['status']}",
             f"B: {b['tag']} #{b['seq']} {b['name']} — {b['description']} [{b['commit'][:7]}] {b['status']}", ""]
    params = data["parameters"]
    lines.append("parameters" + ("" if params else ": the same"))
    width = max([len(n) for n in params] + [9])
    for name, (va, vb) in params.items():
        lines.append(f"  {name:<{width}}  {va if va is not None else '(none)'} → {vb if vb is not None else '(none)'}")
    lines += ["", f"metrics (B − A; beyond the noise: at least noise_k = {config.get('noise_k'):g} standard errors)"]
    rows = [["metric", "A", "B", "B − A", "noise"]]
    for name, m in data["metrics"].items():
        delta = "—" if m["delta"] is None else f"{m['delta']:+.6g}"
        better = ""
        if name == data["metric"] and m["delta"]:
            better = ", B better" if (m["delta"] < 0) == (data["direction"] == MINIMIZE) else ", B worse"
        if m["delta"] == 0:
            verdict = "the same"
        elif m["beyond_noise"] is None:
            verdict = "noise unknown (nothing ran twice)" if m["delta"] is not None else ""
        elif m["beyond_noise"]:
            verdict = (f"beyond the noise ({abs(m['delta']) / m['se']:.1f} SE)" if m["se"] else "beyond the noise") + better
        else:
            verdict = f"within the noise ({abs(m['delta']) / m['se']:.1f} SE)" + better
        rows.append([name, fmt_metric(m["a"]), fmt_metric(m["b"]), delta, verdict])
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if data["code"] is not None:
        lines += ["", "code" + ("" if data["code"] else ": the same"), *data["code"].rstrip("\n").splitlines()]
    return "\n".join(printable(line) for line in lines) + "\n"
