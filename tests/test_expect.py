"""The expectation grammar: comparisons against the baseline or a number, no eval."""
from __future__ import annotations

import re

import pytest

from autoresearch.errors import ExpectationError
from autoresearch.expect import evaluate, parse_expectation


@pytest.mark.parametrize("text, value, baseline, met", [
    ("< baseline - 0.001", 0.990, 1.0, True),
    ("< baseline - 0.001", 0.9995, 1.0, False),
    ("<= baseline * 1.1", 1.1, 1.0, True),
    ("<= baseline * 1.1", 1.11, 1.0, False),
    ("< 0.05", 0.04, None, True),
    (">= 3", 2.0, None, False),
    ("> baseline", 2.0, 1.0, True),
    ("< baseline - 1%", 0.985, 1.0, True),
    ("< baseline - 1%", 0.995, 1.0, False),
    ("== baseline", 1.0, 1.0, True),
    ("!= baseline", 1.0, 1.0, False),
    ("<baseline-0.5", 0.4, 1.0, True),
    ("< baseline / 2", 0.4, 1.0, True),
    ("< 1e-3", 0.0001, None, True),
])
def test_comparisons(text, value, baseline, met):
    assert parse_expectation(text).check(value, baseline, "m")[0] == ("confirmed" if met else "refuted")


@pytest.mark.parametrize("text, message", [
    ("", "does not start with a comparison"),
    ("baseline < 1", "does not start with a comparison"),
    ("< ", 'after \'<\' comes a number or "baseline"'),
    ("< baseline +", 'after "baseline" comes'),
    ("< baseline ** 2", 'after "baseline" comes'),
    ("< baseline * 2%", "a percentage goes with + or -"),
    ("< baseline / 0", "division by zero"),
    ("< __import__('os')", "cannot read"),
    ("< 1 2", "comes a number or"),
    ("< baseline - 1 2", "unexpected text"),
])
def test_errors_say_what_is_allowed(text, message):
    with pytest.raises(ExpectationError, match=re.escape(message)) as info:
        parse_expectation(text)
    assert "baseline" in str(info.value)


def test_evaluate_records_confirmed_refuted_and_missing_metrics():
    expect = (("val_bpb", "< baseline - 0.001"), ("peak_vram_mb", "<= baseline * 1.05"))
    outcome, details = evaluate(expect, {"val_bpb": 0.98, "peak_vram_mb": 100.0}, {"val_bpb": 1.0, "peak_vram_mb": 100.0})
    assert outcome == "confirmed"
    assert details[0] == "val_bpb 0.98 < 0.999 (baseline - 0.001, baseline 1)"
    outcome, details = evaluate(expect, {"val_bpb": 0.98}, {"val_bpb": 1.0, "peak_vram_mb": 100.0})
    assert outcome == "refuted"
    assert details[1] == "peak_vram_mb was not printed by the run"
    outcome, details = evaluate((("mfu", "> baseline"),), {"mfu": 3.0}, {})
    assert (outcome, details) == ("refuted", ("the baseline printed no mfu to compare with",))
    assert evaluate((), {"x": 1.0}, {}) == (None, ())


def test_nan_never_meets_an_expectation():
    assert parse_expectation("!= 1").check(float("nan"), None, "m")[0] == "refuted"


@pytest.mark.parametrize("value, se, outcome", [
    (0.990, 0.002, "confirmed"),     # 0.009 below the target: 4.5 standard errors
    (0.996, 0.002, "inconclusive"),  # below the target by 1.5 standard errors: the data cannot tell
    (1.001, 0.002, "inconclusive"),  # above it by 1 standard error: not refuted either
    (1.010, 0.002, "refuted"),       # above it by 5.5 standard errors
    (0.996, None, "confirmed"),      # no noise estimate: the plain comparison
    (0.996, 0.0, "confirmed"),       # a workload without noise
])
def test_order_comparisons_within_the_noise_are_inconclusive(value, se, outcome):
    result, words = parse_expectation("< baseline - 0.001").check(value, 1.0, "val_bpb", se, 2.0)
    assert result == outcome
    assert ("within the noise" in words) is (outcome == "inconclusive")
    if se:
        assert f"± {se:.2g}" in words


def test_equality_is_never_inconclusive_and_one_refuted_metric_refutes():
    assert parse_expectation("== 1").check(1.0, None, "m", 0.5, 2.0)[0] == "confirmed"
    expect = (("val_bpb", "< baseline"), ("mfu", "> 3"))
    se = {"val_bpb": 0.01, "mfu": 0.01}
    outcome, _ = evaluate(expect, {"val_bpb": 0.995, "mfu": 2.0}, {"val_bpb": 1.0}, lambda m, b: se[m])
    assert outcome == "refuted"  # mfu is 100 standard errors short: refuted whatever val_bpb says
    outcome, _ = evaluate(expect, {"val_bpb": 0.995, "mfu": 4.0}, {"val_bpb": 1.0}, lambda m, b: se[m])
    assert outcome == "inconclusive"  # val_bpb is 0.5 standard errors better: the data cannot tell
    calls = []
    evaluate(expect, {"val_bpb": 0.9, "mfu": 4.0}, {"val_bpb": 1.0}, lambda m, b: calls.append((m, b)) or 0.01)
    assert calls == [("val_bpb", True), ("mfu", False)]  # a plain number has no baseline's noise
