"""Hypothesis keys are stable: ``--resume`` finds an experiment by its key, so a key computed by
an earlier version must come out byte-identical, and adding a field (or a patch kind) with a
default must change no existing key.

The keys below were computed by the code before patch kinds became modules (commit 352ca1c).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.collect import collect_python, collect_toml
from autoresearch.errors import CollectError
from autoresearch.model import RESERVED, Hypothesis, build
from autoresearch.patches import PatchKind, builtin_kinds

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "set": {"description": "lr up", "hypothesis": "faster", "set": {"LR": 0.02}},
    "set-many": {"description": "many", "hypothesis": "h", "set": {"LR": 0.02, "DEPTH": 6, "ACT": "silu",
                 "BETAS": [0.8, 0.99], "USE": True, "CFG": {"a": 1, "b": [1, 2]}, "NONE_": "x"}},
    "set-int-float": {"description": "d", "hypothesis": "h", "set": {"LR": 1, "B": 1.0, "C": -0.0, "D": 1e-300}},
    "set-unicode": {"description": "dé ✓", "hypothesis": "ünï\ncode", "set": {"NAME": "é\u200d"}},
    "replace": {"description": "r", "hypothesis": "h", "replace": [{"old": "a = 1\n", "new": "a = 2\n"}]},
    "replace-table": {"description": "r", "hypothesis": "h", "replace": {"old": "x", "new": ""}},
    "replace-two": {"description": "r", "hypothesis": "h",
                    "replace": [{"old": "a", "new": "b"}, {"old": "c", "new": "d"}]},
    "diff": {"description": "d", "hypothesis": "h", "diff": "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n"},
    "all-kinds": {"description": "all", "hypothesis": "h", "set": {"LR": 0.5},
                  "replace": [{"old": "a", "new": "b"}], "diff": "--- a/t.py\n+++ b/t.py\n"},
    "named": {"name": "custom-name_1", "description": "d", "hypothesis": "h", "set": {"LR": 0.1}},
    "file": {"description": "d", "hypothesis": "h", "file": "model.py", "set": {"LR": 0.1}},
    "expect": {"description": "d", "hypothesis": "h", "set": {"LR": 0.1},
               "expect": {"val_bpb": "< baseline - 0.001", "peak_vram_mb": "<= baseline * 1.05"}},
    "baseline-initial": {"description": "d", "hypothesis": "h", "set": {"LR": 0.1}, "baseline": "initial"},
    "baseline-name": {"description": "d", "hypothesis": "h", "set": {"LR": 0.1}, "baseline": "other"},
    "baseline-commit": {"description": "d", "hypothesis": "h", "set": {"LR": 0.1}, "baseline": "abc1234"},
    "tags": {"description": "d", "hypothesis": "h", "set": {"LR": 0.1}, "tags": ["lr", "a.b", "x:y"]},
    "allow-type-change": {"description": "d", "hypothesis": "h", "set": {"DEPTH": "deep"}, "allow_type_change": True},
    "allow-new": {"description": "d", "hypothesis": "h", "set": {"WARMUP": 10}, "allow_new": True},
    "allow-new-false": {"description": "d", "hypothesis": "h", "set": {"WARMUP": 10}, "allow_new": False},
    "allow-both": {"description": "d", "hypothesis": "h", "set": {"W": "x"}, "allow_new": True,
                   "allow_type_change": True},
    "no-patch": {"description": "nothing", "hypothesis": "h"},
    "sweep": {"description": "depth {DEPTH}", "hypothesis": "h", "sweep": {"DEPTH": [3, 6]}},
    "sweep-two": {"description": "lr {LR:.3g} wd {WD}", "hypothesis": "h", "set": {"ACT": "gelu"},
                  "sweep": {"LR": [0.01, 0.02], "WD": [0, 0.1]}},
    "sweep-noplaceholder": {"description": "plain", "hypothesis": "h", "sweep": {"S": ["a", "b c"]},
                            "tags": ["t"], "expect": {"val_bpb": "< baseline"}},
    "sweep-overrides-set": {"description": "d {LR}", "hypothesis": "h", "set": {"LR": 0.5}, "sweep": {"LR": [0.1]}},
}

PYTHON = '''
from autoresearch import hypothesis


@hypothesis(description="silu", tags=["act"], expect={"val_bpb": "< baseline"})
def silu(patch):
    """SiLU keeps small negative activations alive."""
    patch.set(ACTIVATION="silu")


@hypothesis(description="two kinds", baseline="initial", file="train.py")
def both(patch):
    """A constant and a text."""
    patch.set(LR=0.02, DEPTH=6)
    patch.replace("a = 1\\n", "a = 2\\n")
    patch.diff("--- a/train.py\\n+++ b/train.py\\n@@ -1 +1 @@\\n-a\\n+b\\n")


@hypothesis(sweep={"LR": [0.01, 0.04]}, allow_type_change=True, allow_new=True)
def lrs(patch, LR):
    """Closer to 0.03 is better."""
    patch.set(WD=0.1)


@hypothesis
def bare(patch):
    """Bare decorator, docstring as description."""
'''

KEYS = {
    'case:set:set': 'f0b972f6efe23c16',
    'case:set-many:set-many': '03ec5fe3f0744587',
    'case:set-int-float:set-int-float': 'e21e3a1fd9cd12dc',
    'case:set-unicode:set-unicode': '10858b569a02ec5b',
    'case:replace:replace': '49b0abe67277744a',
    'case:replace-table:replace-table': 'ec9c3232a31d6a6e',
    'case:replace-two:replace-two': 'ed3f4d4e2f2fa299',
    'case:diff:diff': 'bcd2b7a060d699ac',
    'case:all-kinds:all-kinds': '806385444cbfd794',
    'case:named:custom-name_1': 'c2ad3a0b50a91895',
    'case:file:file': 'fdc866e05170a304',
    'case:expect:expect': '13981043c8709693',
    'case:baseline-initial:baseline-initial': '4722e460a1707886',
    'case:baseline-name:baseline-name': '504265eaa2f1d1ee',
    'case:baseline-commit:baseline-commit': '70ddbdc828d018f5',
    'case:tags:tags': 'd35f3015190a639d',
    'case:allow-type-change:allow-type-change': 'd944ec89e62f293f',
    'case:allow-new:allow-new': '4621d71d7f0bf20e',
    'case:allow-new-false:allow-new-false': 'c7df15ef5dd4c42c',
    'case:allow-both:allow-both': 'a26d95ee8ee9dbf1',
    'case:no-patch:no-patch': '70465fb2eeebf221',
    'case:sweep:sweep[3]': 'f969baf5a8d82861',
    'case:sweep:sweep[6]': 'd1ae36f909b263f2',
    'case:sweep-two:sweep-two[0.01-0]': 'c9deb65ec85e70c3',
    'case:sweep-two:sweep-two[0.01-0.1]': 'dfbe1557053fa7d3',
    'case:sweep-two:sweep-two[0.02-0]': '38871eb649feecaf',
    'case:sweep-two:sweep-two[0.02-0.1]': 'cc53a01ce9f43b36',
    'case:sweep-noplaceholder:sweep-noplaceholder[a]': 'ba20503bef24d5aa',
    'case:sweep-noplaceholder:sweep-noplaceholder[b c]': 'ec62dc4d5aede198',
    'case:sweep-overrides-set:sweep-overrides-set[0.1]': 'c88ef0c7650924cc',
    'file:activations.py:silu': '57166610a4bf2c1e',
    'file:activations.py:no_qk_norm': 'c7e15a1cc985dad5',
    'file:depth.toml:depth[3]': 'b75c376931030bd6',
    'file:depth.toml:depth[6]': 'dde6560ebbc84f70',
    'file:matrix_lr.toml:matrix_lr': 'ad1cc240738b1ee0',
    'file:no_grad_clip.toml:no_grad_clip': 'b2b4e9140bef5eb0',
    'file:schedule.toml:longer_warmdown': '7b0cca77d3e3693d',
    'file:schedule.toml:weight_decay': 'ec98752cf7763d7d',
    'python:silu': '34e2d331d715ab48',
    'python:both': '5e1c99f7500c1542',
    'python:lrs[0.01]': '0e7626d7b26b8511',
    'python:lrs[0.04]': '75eb592e5e8f7add',
    'python:bare': '2930918b7e347e03',
}


class Config:
    def get(self, key):
        return {"max_sweep": 1000, "python_hypotheses": True}[key]


def computed(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, raw in CASES.items():
        for h in build(dict(raw), "experiments/x.toml", 1, name):
            out[f"case:{name}:{h.name}"] = h.key
    for f in sorted((ROOT / "experiments").iterdir()):
        rel = f"experiments/{f.name}"
        hs = collect_toml(f, rel) if f.suffix == ".toml" else collect_python(f, rel, Config())
        for h in hs:
            out[f"file:{f.name}:{h.name}"] = h.key
    (tmp_path / "ideas.py").write_text(PYTHON)
    for h in collect_python(tmp_path / "ideas.py", "experiments/ideas.py", Config()):
        out[f"python:{h.name}"] = h.key
    return out


def test_keys_are_those_the_earlier_code_computed(tmp_path):
    got = computed(tmp_path)
    assert set(got) == set(KEYS)
    changed = {k: (KEYS[k], got[k]) for k in KEYS if got[k] != KEYS[k]}
    assert not changed, changed


def test_a_key_ignores_where_and_how_a_hypothesis_is_written():
    (h,) = build(dict(CASES["tags"]), "experiments/x.toml", 1, "tags")
    moved = dataclasses.replace(h, path="elsewhere/y.toml", line=40, tags=("other",))
    assert moved.key == h.key
    assert dataclasses.replace(h, description="another").key != h.key


def test_adding_a_field_with_a_default_changes_no_key():
    """A later version that adds a field to Hypothesis (with a default) keeps every key; a hypothesis
    that sets the new field to something else gets a key of its own."""
    Later = dataclasses.make_dataclass("Later", [("seed_offset", int, dataclasses.field(default=0)),
                                                 ("notes", tuple, dataclasses.field(default=()))],
                                       bases=(Hypothesis,), frozen=True)
    for name, raw in CASES.items():
        for h in build(dict(raw), "experiments/x.toml", 1, name):
            later = Later(**{f.name: getattr(h, f.name) for f in dataclasses.fields(Hypothesis)})
            assert later.key == h.key == KEYS[f"case:{name}:{h.name}"]
            assert dataclasses.replace(later, seed_offset=1).key != h.key
            assert dataclasses.replace(later, notes=("x",)).key != h.key


class Append(PatchKind):
    name = "append"
    fields = {"append": "lines to add at the end of the editable file"}

    def parse(self, raw, fail):
        return raw.get("append") or None


def test_a_new_patch_kind_changes_no_key_of_a_hypothesis_that_does_not_use_it():
    kinds = builtin_kinds() + (Append(),)
    for name, raw in CASES.items():
        for h in build(dict(raw), "experiments/x.toml", 1, name, kinds=kinds):
            assert h.key == KEYS[f"case:{name}:{h.name}"]
    (plain,) = build(dict(CASES["set"]), "experiments/x.toml", 1, "set", kinds=kinds)
    (appended,) = build({**CASES["set"], "append": "X = 1\n"}, "experiments/x.toml", 1, "set", kinds=kinds)
    assert appended.key != plain.key and [k.name for k, _ in appended.patches] == ["set", "append"]


def legacy_key(h: Hypothesis) -> str:
    """The key as the code before patch kinds computed it: every field but path, line, params and
    tags, with allow_new only when true (asdict of the earlier dataclass, spelled out)."""
    content = {"name": h.name, "description": h.description, "hypothesis": h.hypothesis, "file": h.file,
               "set": h.set, "replace": [{"old": r.old, "new": r.new} for r in h.replace], "diff": h.diff,
               "expect": h.expect, "baseline": h.baseline, "allow_type_change": h.allow_type_change}
    if h.allow_new:
        content["allow_new"] = True
    blob = json.dumps(content, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


LITERALS = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
                        | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
PY_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
WORDS = st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), min_size=1, max_size=20).filter(str.strip)


@st.composite
def raw_hypotheses(draw) -> dict:
    raw = {"description": draw(WORDS), "hypothesis": draw(WORDS)}
    optional = {
        "name": st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True).filter(lambda n: n not in RESERVED),
        "set": st.dictionaries(PY_NAMES, LITERALS, max_size=3),
        "replace": st.lists(st.fixed_dictionaries({"old": st.text(min_size=1, max_size=8), "new": st.text(max_size=8)}),
                            max_size=2),
        "diff": st.just("--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n"),
        "expect": st.dictionaries(st.sampled_from(["val_bpb", "loss.train"]), st.sampled_from(["< baseline", "> 1"]),
                                  max_size=2),
        "baseline": st.sampled_from(["best", "initial", "abc1234", "other"]),
        "tags": st.lists(st.sampled_from(["lr", "a.b"]), max_size=2),
        "file": st.sampled_from(["train.py", "model.py"]),
        "allow_type_change": st.booleans(), "allow_new": st.booleans(),
        "sweep": st.dictionaries(PY_NAMES, st.lists(st.integers(-5, 5), min_size=1, max_size=2), max_size=2),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        raw[key] = draw(optional[key])
    return raw


@given(raw_hypotheses())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_every_key_is_the_key_the_earlier_code_computed(raw):
    try:
        hypotheses = build(raw, "experiments/x.toml", 1, "x")
    except CollectError:
        return
    for h in hypotheses:
        assert h.key == legacy_key(h)
