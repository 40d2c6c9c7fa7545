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
    assert parse_expectation(text).check(value, baseline, "m")[0] is met


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
    assert parse_expectation("!= 1").check(float("nan"), None, "m")[0] is False
