"""Property-based tests (the hypothesis library)."""
from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.errors import ExpectationError, PatchError
from autoresearch.expect import parse_expectation
from autoresearch.model import Hypothesis
from autoresearch.patches import apply_patch, builtin_kinds, patch_kinds
from autoresearch.patches.replace import Replace
from autoresearch.patches.set import apply_set, assignments
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

PY_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
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


# -------------------------------------------------------------------------------------------
# Patch kinds: each, applied through the kind interface, changes exactly what it says


def hypothesis_with(kind_name: str, value) -> Hypothesis:
    kinds = {kind.name: kind for kind in builtin_kinds()}
    return Hypothesis(name="h", description="d", hypothesis="h", path="x.toml", patches=((kinds[kind_name], value),))


@given(st.sampled_from(sorted(VALUES)).flatmap(lambda n: st.tuples(st.just(n), VALUES[n])), PY_NAME)
@settings(max_examples=200)
def test_set_kind_changes_one_constant_and_names_what_it_cannot(pair, unknown):
    name, value = pair
    result = apply_patch(hypothesis_with("set", ((name, value),)), {"config.py": SOURCE}, ["config.py"], [])
    assert [c[0] for c in result.changes] == [name] and assignments(result.after["config.py"])[name][3]
    if unknown not in assignments(SOURCE):
        try:
            apply_patch(hypothesis_with("set", ((unknown, 1),)), {"config.py": SOURCE}, ["config.py"], [])
        except PatchError as exc:  # the fields say which entry, so no one reads it back out of the text
            assert (exc.kind, exc.key) == ("set", unknown) and str(exc).startswith(f"set.{unknown}: ")
        else:
            raise AssertionError("an unknown constant applied")


TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)


@given(TEXT, st.text(min_size=1, max_size=6), TEXT, TEXT)
@settings(max_examples=300)
def test_replace_kind_replaces_text_that_occurs_once_and_nothing_else(before, old, after, new):
    source = before + old + after
    h = hypothesis_with("replace", (Replace(old, new),))
    try:
        result = apply_patch(h, {"train.py": source}, ["train.py"], [])
    except PatchError as exc:
        assert source.count(old) > 1 and exc.kind == "replace" and "found" in str(exc)
        return
    assert source.count(old) == 1
    assert result.after["train.py"] == before + new + after


LINES = st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=8), min_size=1,
                 max_size=8)


@given(LINES, st.data())
@settings(max_examples=40, deadline=None)
def test_diff_kind_turns_the_old_text_into_exactly_the_new(lines, data):
    import difflib

    new_lines = data.draw(st.lists(st.sampled_from(lines) | LINES.map(lambda x: x[0]), min_size=1, max_size=8))
    old, new = "".join(f"{line}\n" for line in lines), "".join(f"{line}\n" for line in new_lines)
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/train.py", "b/train.py"))
    if old == new:
        return
    result = apply_patch(hypothesis_with("diff", diff), {"train.py": old, "model.py": "x\n"},
                         ["train.py", "model.py"], [])
    assert result.after == {"train.py": new, "model.py": "x\n"}
    assert patch_kinds(hypothesis_with("diff", diff)) == ("diff",)
