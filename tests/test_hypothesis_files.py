"""Hypothesis files as editors, tools and careless hands save them, fuzzed: any byte-order mark, any
encoding, names and texts in any script, stray bytes anywhere. Each file is collected, or refused with
one line that names the file and a line of it; never a traceback, never a wrong file collected."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Result
from autoresearch.cli import main

BOMS = {"none": b"", "utf-8": b"\xef\xbb\xbf", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff",
        "utf-32-le": b"\xff\xfe\x00\x00"}
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "shift_jis", "koi8-r"]
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


def toml(description: str, text: str) -> str:
    q = lambda s: s.replace("\\", "\\\\").replace('"', '\\"')  # noqa: E731
    return f'description = "{q(description)}"\nhypothesis = "{q(text)}"\n[set]\nLR = 0.02\n'


@pytest.fixture
def collect(repo, capsys):
    def run(data: bytes) -> Result:
        for old in (repo / "experiments").glob("f*.toml"):
            old.unlink()
        (repo / "experiments" / "f.toml").write_bytes(data)
        capsys.readouterr()
        rc = main(["run", "--collect-only"])
        out = capsys.readouterr()
        return Result(int(rc), out.out, out.err)
    return run


def one_line_about_the_file(r: Result) -> None:
    assert r.rc == 4, r
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    first = r.err.splitlines()[0]
    assert re.fullmatch(r"ERROR experiments/f\.toml:\d+: .+", first), r.err
    assert "\x1b" not in r.err and "\x00" not in r.err, r.err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bom=st.sampled_from(sorted(BOMS)), encoding=st.sampled_from(ENCODINGS), description=WORDS, text=WORDS,
       stray=st.none() | st.tuples(st.integers(0, 200), st.binary(min_size=1, max_size=4)))
def test_any_bom_encoding_or_stray_byte_is_collected_or_one_line(collect, bom, encoding, description, text, stray):
    source = toml(description, text)
    try:
        data = BOMS[bom] + source.encode(encoding)
    except UnicodeEncodeError:
        data = BOMS[bom] + source.encode(encoding, errors="replace")
    if stray:
        at, junk = stray
        data = data[:at] + junk + data[at:]
    r = collect(data)
    if r.rc == 0:  # collected: then it was UTF-8 (a BOM at the very start allowed), and read as written
        assert "experiments/f.toml::f" in r.out, r
        body = data[3:] if data.startswith(BOMS["utf-8"]) else data
        body.decode("utf-8")  # raises if a file that is not UTF-8 was taken for one
    else:
        one_line_about_the_file(r)
    plain = all(c.isalnum() for c in description + text)  # in any script (a blank text is refused: rightly)
    if plain and not stray and bom in ("none", "utf-8") and encoding == "utf-8":
        assert r.rc == 0, r  # a UTF-8 file, with or without its BOM, is always read


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_a_file_in_another_encoding_says_which_bytes_are_not_utf8(collect, encoding):
    r = collect(toml("café ö", "naïve").encode(encoding))
    one_line_about_the_file(r)
    assert "UTF-8" in r.err.splitlines()[0] or "byte-order mark" in r.err.splitlines()[0], r.err
