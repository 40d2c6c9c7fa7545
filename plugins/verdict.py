"""verdict: the seed's simplicity criterion, with its thresholds configurable, and the tip rule.

    better by more than keep_threshold (0.005)            -> keep
    better by min_improvement..keep_threshold (0.001)     -> keep, unless it adds max_added_lines (20)+
    within +-min_improvement                              -> keep only if the code got simpler
    worse                                                 -> discard
    a keep built on another commit than the branch tip    -> discard unless it also beats the tip

Complexity is the net number of lines the patch adds to the editable files. Direction-aware.
A plugin can replace the whole rule: implement ``autoresearch_make_verdict`` with ``tryfirst=True``.
"""
from __future__ import annotations

from autoresearch import Verdict, hookimpl
from autoresearch.config import not_negative, positive
from autoresearch.reports import Cause, better, improvement


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("keep_threshold", type="float", default=0.005, check=not_negative,
                      help="an improvement above this is kept whatever the added lines")
    parser.addsetting("min_improvement", type="float", default=0.001, check=not_negative,
                      help="changes smaller than this are noise: kept only if they simplify the code")
    parser.addsetting("max_added_lines", type="int", default=20, check=positive,
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
def autoresearch_make_verdict(experiment, metrics, runs, tip) -> Verdict:
    config = experiment.session.config
    metric, direction = config.get("metric"), config.get("direction")
    failed = next((r for r in runs if not r.ok), None)
    if failed is not None:  # a conflict with a kept change is no crash: the idea, as written, lost
        status = "discard" if failed.cause == Cause.CONFLICT else "crash"
        return Verdict(status, f"{status}: {failed.message or failed.cause}")
    value = metrics[metric]
    if experiment.hypothesis is None:
        return Verdict("keep", f"baseline: {metric} {value:.6f}")
    base = experiment.baseline.mean(metric)
    if base is None:
        return Verdict("discard", f"discard: the baseline printed no {metric} to compare with")
    net = experiment.lines_added - experiment.lines_removed
    status, why = decide(improvement(value, base, direction), net, keep_threshold=config.get("keep_threshold"),
                         min_improvement=config.get("min_improvement"),
                         max_added_lines=config.get("max_added_lines"))
    tip_value = tip.mean(metric)
    if status == "keep" and tip.commit != experiment.base_commit and tip_value is not None \
            and not better(value, tip_value, direction):
        return Verdict("discard", f"discard: better than its baseline {experiment.hypothesis.baseline} but not "
                                  f"than the branch tip ({value:.6f} vs {tip_value:.6f})")
    return Verdict(status, f"{status}: {value - base:+.4f} {metric} for {net:+d} lines ({why})")
