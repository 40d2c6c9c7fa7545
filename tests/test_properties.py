"""Property-based tests (the hypothesis library)."""
from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.errors import ExpectationError
from autoresearch.expect import parse_expectation
from autoresearch.patching import apply_set, assignments
from autoresearch.plugins.results_tsv import clean, read_results, render
from autoresearch.reports import Report

TOKENS = st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "baseline", "+", "-", "*", "/", "%", "1", "0.5",
                          "1e3", "-2", " ", "(", "x", "nan", "é", "\n", "\t", "baseline-1"])


@given(st.one_of(st.text(), st.lists(TOKENS, max_size=8).map("".join)))
@settings(max_examples=400)
def test_expectation_parser_raises_only_its_own_error(text):
    try:
        exp = parse_expectation(text)
    except ExpectationError:
        return
    outcome, why = exp.check(1.0, 2.0, "m")
    assert outcome in ("confirmed", "refuted") and why
    outcome, why = exp.check(1.0, 2.0, "m", se=0.1, k=2.0)
    assert outcome in ("confirmed", "refuted", "inconclusive") and why


SOURCE = '''"""Config."""
import os  # ünïcode ✓

DEPTH = 8            # blocks
LR = 2**-6           # an expression
NAME = "relu2"       # a string
BETAS = (0.9, 0.95)  # a tuple
USE = True
'''

VALUES = {
    "DEPTH": st.integers(min_value=-10**12, max_value=10**12),
    "LR": st.floats(allow_nan=False, allow_infinity=False),
    "NAME": st.text(),
    "BETAS": st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4),
    "USE": st.booleans(),
}


@given(st.sampled_from(sorted(VALUES)).flatmap(lambda n: st.tuples(st.just(n), VALUES[n])))
@settings(max_examples=300)
def test_set_round_trips_and_leaves_every_other_byte(pair):
    name, value = pair
    new, _ = apply_set(SOURCE, ((name, value),), "config.py")
    begin, end, _, _ = assignments(SOURCE)[name]
    nbegin, nend, read_back, known = assignments(new)[name]
    assert known
    expected = tuple(value) if name == "BETAS" else value
    if name == "LR":
        assert math.isclose(read_back, value) or read_back == value
    else:
        assert read_back == expected
    raw, nraw = SOURCE.encode(), new.encode()
    assert nraw[:nbegin] == raw[:begin] and nraw[nend:] == raw[end:]


@given(st.text(min_size=1))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_description_is_one_row_that_reads_back(tmp_path_factory, description):
    report = Report(seq=1, tag="t", nodeid="n", name="n", key="k", description=description, hypothesis="h",
                    status="discard", reason="r", metric="val_bpb", direction="minimize",
                    metrics={"val_bpb": 1.5}, commit="abcdef123")
    text = render("val_bpb", [report])
    path = Path(tmp_path_factory.mktemp("tsv")) / "results.tsv"
    path.write_text(text)
    rows = read_results(path)
    assert len(rows) == 1
    assert rows[0]["description"] == clean(description)
    assert rows[0]["status"] == "discard" and rows[0]["val_bpb"] == "1.500000"
    assert "\t" not in clean(description) and len(clean(description).splitlines()) <= 1
