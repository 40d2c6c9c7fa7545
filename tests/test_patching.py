"""The patch engine: set through the AST, byte for byte; replace exactly once; diff with git."""
from __future__ import annotations

import pickle

import pytest

from autoresearch.errors import PatchError
from autoresearch.model import Hypothesis
from autoresearch.patches import apply_patch, builtin_kinds, describe, patch_kinds
from autoresearch.patches.replace import Replace
from autoresearch.patches.set import apply_set, assignments

SOURCE = '''\
"""A module."""
import math

BATCH = 2**19          # tokens per step
LR = 0.04              # learning rate
BETAS = (0.9, 0.95)    # Adam betas
NAME = "relu2"         # activation
DEPTH: int = 8         # annotated
FLAG = True
NEG = -3
cfg = dict(a=1)        # not a literal
def f():
    LR = 1.0  # not module level
    return LR
'''


def test_set_changes_only_the_value_bytes():
    new, changes = apply_set(SOURCE, (("LR", 0.06),), "t.py")
    assert new == SOURCE.replace("LR = 0.04 ", "LR = 0.06 ")
    assert changes == [("LR", "0.04", "0.06")]


def test_set_expression_tuple_string_annotated_negative():
    new, changes = apply_set(SOURCE, (("BATCH", 2**20), ("BETAS", [0.8, 0.99]), ("NAME", "silu"),
                                      ("DEPTH", 6), ("NEG", -4)), "t.py")
    assert "BATCH = 1048576          # tokens per step" in new
    assert "BETAS = (0.8, 0.99)    # Adam betas" in new  # a TOML list becomes the tuple it replaces
    assert 'NAME = "silu"         # activation' in new  # double quotes kept
    assert "DEPTH: int = 6         # annotated" in new
    assert "NEG = -4\n" in new
    assert "    LR = 1.0  # not module level" in new
    assert [c[0] for c in changes] == ["BATCH", "BETAS", "NAME", "DEPTH", "NEG"]


def test_int_for_a_float_constant_stays_a_float():
    new, _ = apply_set(SOURCE, (("LR", 1),), "t.py")
    assert "LR = 1.0              # learning rate" in new


def test_unknown_name_suggests_close_matches():
    with pytest.raises(PatchError, match=r"no module-level constant LRR \(did you mean LR\? constants: "):
        apply_set(SOURCE, (("LRR", 0.1),), "t.py")
    with pytest.raises(PatchError, match="did you mean DEPTH"):
        apply_set(SOURCE, (("depth", 3),), "t.py")


def test_type_change_is_an_error_unless_asked_for():
    with pytest.raises(PatchError, match=r"type change from int \(8\) to str \('deep'\).*allow_type_change"):
        apply_set(SOURCE, (("DEPTH", "deep"),), "t.py")
    with pytest.raises(PatchError, match="type change from float"):
        apply_set(SOURCE, (("LR", "fast"),), "t.py")
    with pytest.raises(PatchError, match="type change from bool"):
        apply_set(SOURCE, (("FLAG", 1),), "t.py")
    with pytest.raises(PatchError, match="type change from int"):
        apply_set(SOURCE, (("DEPTH", 4.5),), "t.py")
    new, _ = apply_set(SOURCE, (("DEPTH", "deep"),), "t.py", allow_type_change=True)
    assert "DEPTH: int = 'deep'" in new


def test_non_literal_constant_can_still_be_set():
    new, _ = apply_set(SOURCE, (("cfg", {"a": 2}),), "t.py")
    assert "cfg = {'a': 2}        # not a literal" in new


def test_utf8_before_the_value_keeps_offsets_right():
    src = 'NOTE = "héllo ✓"  # ünïcode\nLR = 0.1  # ✓\n'
    new, _ = apply_set(src, (("LR", 0.2), ("NOTE", "ok")), "t.py")
    assert new == 'NOTE = "ok"  # ünïcode\nLR = 0.2  # ✓\n'


def test_assigned_twice_is_ambiguous():
    with pytest.raises(PatchError, match="assigned more than once"):
        apply_set("A = 1\nA = 2\n", (("A", 3),), "t.py")


def hyp(**patches) -> Hypothesis:
    """A hypothesis with the given patch kinds' values: hyp(diff=DIFF)."""
    kinds = {kind.name: kind for kind in builtin_kinds()}
    return Hypothesis(name="h", description="d", hypothesis="because", path="x.toml",
                      patches=tuple((kinds[name], value) for name, value in patches.items()))


def test_replace_exactly_once():
    texts = {"train.py": "a = 1\nb = 2\n"}
    result = apply_patch(hyp(replace=(Replace("b = 2\n", "b = 3\nc = 4\n"),)), texts, ["train.py"], [])
    assert result.after["train.py"] == "a = 1\nb = 3\nc = 4\n"
    assert result.counts == (2, 1)
    with pytest.raises(PatchError, match="text not found in train.py: 'z = 9'"):
        apply_patch(hyp(replace=(Replace("z = 9", ""),)), texts, ["train.py"], [])
    with pytest.raises(PatchError, match="found 2 times"):
        apply_patch(hyp(replace=(Replace(" = ", "="),)), texts, ["train.py"], [])


DIFF = """\
--- a/train.py
+++ b/train.py
@@ -1,2 +1,2 @@
 a = 1
-b = 2
+b = 20
"""


def test_diff_applies_with_git():
    result = apply_patch(hyp(diff=DIFF), {"train.py": "a = 1\nb = 2\n"}, ["train.py"], ["prepare.py"])
    assert result.after["train.py"] == "a = 1\nb = 20\n"
    assert result.counts == (1, 1)


def test_diff_that_does_not_apply():
    with pytest.raises(PatchError, match="diff does not apply"):
        apply_patch(hyp(diff=DIFF), {"train.py": "a = 1\nb = 5\n"}, ["train.py"], [])


@pytest.mark.parametrize("path, message", [
    ("prepare.py", "touches protected file prepare.py"),
    ("other.py", "touches other.py, which is not editable"),
    ("../outside.py", "outside the repository"),
    ("/etc/passwd", "outside the repository"),
])
def test_diff_confined_to_editable_files(path, message):
    diff = DIFF.replace("a/train.py", f"a/{path}").replace("b/train.py", f"b/{path}")
    if path.startswith("/"):
        diff = DIFF.replace("a/train.py", path).replace("b/train.py", path)
    with pytest.raises(PatchError, match=message):
        apply_patch(hyp(diff=diff), {"train.py": "a = 1\nb = 2\n"}, ["train.py"], ["prepare.py"])


def test_diff_without_headers():
    with pytest.raises(PatchError, match="no '--- a/FILE'"):
        apply_patch(hyp(diff="just text"), {"train.py": "a = 1\n"}, ["train.py"], [])


def test_assignments_table_is_cached_per_source():
    assignments.cache_clear()
    apply_set(SOURCE, (("LR", 0.1),), "t.py")
    apply_set(SOURCE, (("LR", 0.2),), "t.py")
    assert assignments.cache_info().hits >= 1


def test_a_patch_error_carries_its_kind_and_key():
    texts = {"train.py": "a = 1\nb = 2\n"}
    cases = [(hyp(set=(("c", 1),)), ("set", "c")), (hyp(set=(("a", "x"),)), ("set", "a")),
             (hyp(replace=(Replace("z", "y"),)), ("replace", None)), (hyp(diff=DIFF), ("diff", None)),
             (hyp(diff="just text"), ("diff", None))]
    for h, fields in cases:
        with pytest.raises(PatchError) as info:
            apply_patch(h, {"train.py": "a = 1\nb = 5\n"}, ["train.py"], [])
        assert (info.value.kind, info.value.key) == fields, (h, str(info.value))
    with pytest.raises(PatchError) as info:
        apply_patch(Hypothesis(name="h", description="d", hypothesis="h", path="x.toml", file="model.py"), texts,
                    ["train.py"], [])
    assert info.value.kind == "file" and "model.py is not an editable file" in str(info.value)


def test_kinds_describe_themselves_in_registry_order():
    h = hyp(set=(("b", 3),), replace=(Replace("a = 1", "a = 2"),))
    result = apply_patch(h, {"train.py": "a = 1\nb = 2\n"}, ["train.py"], [])
    assert describe(h, result) == ["b 2 → 3", "replace 1 text"]
    assert patch_kinds(h) == ("set", "replace") and patch_kinds(None) == ()
    assert result.changes == [("b", "2", "3")] and result.after["train.py"] == "a = 2\nb = 3\n"
    assert pickle.loads(pickle.dumps(h)) == h  # a hypothesis sent to a worker is the same hypothesis
