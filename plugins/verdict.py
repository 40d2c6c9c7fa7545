"""verdict: the seed's simplicity criterion, with its thresholds configurable.

    better by more than keep_threshold (0.005)            -> keep
    better by min_improvement..keep_threshold (0.001)     -> keep, unless it adds max_added_lines (20)+
    within +-min_improvement                              -> keep only if the code got simpler
    worse                                                 -> discard

Complexity is the net number of lines the patch adds to the editable files. Direction-aware.
A plugin can replace this rule: implement ``autoresearch_make_verdict`` with ``tryfirst=True``.
"""
from __future__ import annotations

import math

from autoresearch import Verdict, hookimpl


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("keep_threshold", type="float", default=0.005,
                      help="an improvement above this is kept whatever the added lines")
    parser.addsetting("min_improvement", type="float", default=0.001,
                      help="changes smaller than this are noise: kept only if they simplify the code")
    parser.addsetting("max_added_lines", type="int", default=20,
                      help="a small improvement that adds this many lines or more is discarded")


def decide(improvement: float, net_lines: int, *, keep_threshold: float, min_improvement: float,
           max_added_lines: int) -> tuple[str, str]:
    """(status, why) for an improvement (positive = better) and the net lines the patch added."""
    if improvement > keep_threshold:
        return "keep", "large improvement"
    if improvement >= min_improvement:
        if net_lines >= max_added_lines:
            return "discard", f"small improvement for {net_lines} added lines (limit {max_added_lines})"
        return "keep", "small improvement, small change"
    if improvement > -min_improvement:
        if net_lines < 0:
            return "keep", "no change in the metric, simpler code"
        return "discard", "within noise, no simpler"
    return "discard", "worse"


@hookimpl
def autoresearch_make_verdict(experiment, metrics, result) -> Verdict:
    config = experiment.session.config
    metric = config.get("metric")
    value = metrics.get(metric)
    if result.returncode != 0 or value is None or math.isnan(value):
        why = ("timeout" if result.timed_out else f"exit code {result.returncode}" if result.returncode
               else f"no {metric} printed" if value is None else f"{metric} is NaN")
        return Verdict("crash", f"crash: {why}")
    if experiment.hypothesis is None:
        return Verdict("keep", f"baseline: {metric} {value:.6f}")
    base = experiment.baseline_metrics.get(metric)
    if base is None:
        return Verdict("discard", f"discard: the baseline printed no {metric} to compare with")
    delta = value - base
    improvement = -delta if config.get("direction") == "minimize" else delta
    net = experiment.lines_added - experiment.lines_removed
    status, why = decide(improvement, net, keep_threshold=config.get("keep_threshold"),
                         min_improvement=config.get("min_improvement"),
                         max_added_lines=config.get("max_added_lines"))
    return Verdict(status, f"{status}: {delta:+.4f} {metric} for {net:+d} lines ({why})")
