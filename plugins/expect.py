"""expect: judge each hypothesis' expectation (``[expect]``) and put the outcome in its report.

Confirmed or refuted is recorded beside the verdict, never instead of it: a refuted hypothesis
can still be kept, and a confirmed one discarded.
"""
from __future__ import annotations

from dataclasses import replace

from autoresearch import hookimpl
from autoresearch.expect import evaluate


@hookimpl(wrapper=True)
def autoresearch_make_report(experiment, verdict):
    report = yield
    h = experiment.hypothesis
    if h is None or not h.expect:
        return report
    outcome, details = evaluate(h.expect, report.metrics, report.baseline_metrics)
    return replace(report, expectation=outcome, expectation_details=details)
