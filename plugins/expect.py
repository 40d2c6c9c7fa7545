"""expect: judge each hypothesis' expectation (``[expect]``) and put the outcome in its report.

Judged on the means, with their uncertainty: **confirmed** or **refuted** when the data can tell,
**inconclusive** when the comparison holds or fails by less than ``noise_k`` standard errors
(the noise of each metric pooled over the run), **untested** when the experiment crashed. Recorded
beside the verdict, never instead of it: a refuted hypothesis can still be kept.
"""
from __future__ import annotations

import math
from dataclasses import replace

from autoresearch import hookimpl
from autoresearch.reports import Status
from autoresearch.expect import evaluate


@hookimpl(wrapper=True)
def autoresearch_make_report(experiment, verdict):
    report = yield
    h = experiment.hypothesis
    if h is None or not h.expect or report.status == Status.INTERRUPTED:
        return report
    if report.status == Status.CRASH or not report.metrics:
        return replace(report, expectation="untested",
                       expectation_details=(f"untested: {report.root_cause or report.reason}",))
    session = experiment.session
    n_base = {m: len(experiment.baseline.values(m)) for m, _ in h.expect}

    def se(metric: str, against_baseline: bool) -> float | None:
        values = tuple(r.metrics[metric] for r in report.runs if r.ok and metric in r.metrics)
        sigma, _ = session.noise(metric, values)
        if sigma is None or not values:
            return None
        return sigma * math.sqrt(1 / len(values) + (1 / max(n_base[metric], 1) if against_baseline else 0.0))

    outcome, details = evaluate(h.expect, report.metrics, report.baseline_metrics, se,
                                session.config.get("noise_k", 2.0))
    return replace(report, expectation=outcome, expectation_details=details)
