"""Hypothesis names, fuzzed against the rule the docs state (docs/hypotheses.md): 1 to 100 letters
and digits of any script, '_', '-' and '.', at least one letter or digit, in composed form (NFC),
and not 'best', 'initial' or 'baseline'. A name in a file's ``name`` key, or a file's stem, that
keeps the rule is collected under that name; any other is one line naming the file, never a
traceback, and whatever it holds is shown escaped."""
from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.cli import main
from conftest import Result, git

# letters and digits of several scripts, the three allowed marks, and what a careless or hostile hand adds
ALPHABET = ["a", "Z", "é", "ö", "ж", "学", "λ", "٣", "7", "²", "Ⅷ", "_", "-", ".", " ", "!", "[", "\\", "'", '"',
            "e\u0301", "\u0301", "\u200b", "\u2028", "\x1b", "\x07", "\t", "\x7f"]
NAMES = st.lists(st.sampled_from(ALPHABET), min_size=0, max_size=8).map("".join) | st.sampled_from(
    ["best", "initial", "baseline", "a" * 100, "a" * 101, "lr0.02", "...", "-", "lernrate_ö", "学习率"])


def keeps_the_rule(name: str) -> bool:
    """The rule as docs/hypotheses.md states it, written apart from the code that checks it."""
    return (1 <= len(name) <= 100 and all(c.isalnum() or c in "_-." for c in name) and any(c.isalnum() for c in name)
            and unicodedata.normalize("NFC", name) == name and name not in ("best", "initial", "baseline"))


@pytest.fixture
def collect(repo, capsys):
    def run(stem: str, body: str) -> Result:
        for old in (repo / "experiments").iterdir():
            old.unlink()
        (repo / "experiments" / f"{stem}.toml").write_text(body)
        capsys.readouterr()
        rc = main(["run", "--collect-only"])
        out = capsys.readouterr()
        return Result(int(rc), out.out, out.err)
    return run


def toml_string(s: str) -> str:
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in s) + '"'


def collected_or_one_line(r: Result, name: str, file: str) -> None:
    if keeps_the_rule(name):
        assert r.rc == 0 and f"experiments/{file}::{name}" in r.out, r
        return
    assert r.rc == 4 and "Traceback" not in r.err, r
    first = r.err.splitlines()[0]
    assert first.isprintable(), r.err  # what the name holds is shown escaped
    if not file.isprintable():  # a file name that would take over the terminal: refused as such
        assert re.fullmatch(r"ERROR experiments/.+\.toml:1: the file's name holds a control or invisible character "
                            r"\(rename the file\)", first), r.err
        return
    assert re.fullmatch(r"ERROR experiments/.+\.toml:\d+: name .+", first), r.err
    assert "reserved" in first if name in ("best", "initial", "baseline") else "(1 to 100 letters, digits" in first


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_any_name_key_is_collected_as_itself_exactly_when_it_keeps_the_documented_rule(collect, name):
    r = collect("f", f'name = {toml_string(name)}\ndescription = "d"\nhypothesis = "h"\n[set]\nLR = 0.02\n')
    collected_or_one_line(r, name, "f.toml")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stem=NAMES.filter(lambda s: s and "/" not in s and "\x00" not in s and not s.startswith((".", "_"))
                         and len(s.encode()) < 200))
def test_any_file_stem_names_its_hypothesis_exactly_when_it_keeps_the_documented_rule(collect, stem):
    """(A file whose name starts with '.' or '_' is not collected, as a folder's is not.)"""
    r = collect(stem, 'description = "d"\nhypothesis = "h"\n[set]\nLR = 0.02\n')
    collected_or_one_line(r, stem, f"{stem}.toml")


def test_names_in_other_scripts_run_and_are_recorded_under_their_own_names(repo, capsys):
    (repo / "experiments" / "学习率.toml").write_text('description = "lr up"\nhypothesis = "h"\n[set]\nLR = 0.02\n')
    (repo / "experiments" / "lr0.02.toml").write_text(
        'name = "lernrate_ö"\ndescription = "lr down"\nhypothesis = "h"\n[set]\nLR = 0.001\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hypotheses")
    assert main(["run", "--tag", "t1", "-q"]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["show", "--tag", "t1", "--csv"]) == 0
    shown = capsys.readouterr().out
    assert "学习率" in shown and "lernrate_ö" in shown, shown
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/autoresearch/t1").splitlines()
    assert len(refs) == 2 and len(set(refs)) == 2, refs  # one ref each, whatever their slugs
