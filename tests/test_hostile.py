"""Hostile input: whatever a careless or hostile agent writes, one line, exit 4, nothing written.

Each kind of bad input (diff headers that reach other files, values that make tracebacks, things
once caught only mid-run, text that takes over the output, silent no-ops) has its tests here, and
a fuzz test writes random hypothesis files and settings and checks the promise for all of them.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from autoresearch.cli import main
from conftest import FAKE_TRAIN, git, hyp, simple, write

SECRET = "TOP-SECRET-7f3a9c-do-not-leak"


def snapshot(root: Path) -> dict:
    """Everything a run could write: refs, HEAD, the index, every file outside .git (by hash)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or path.is_dir():
            continue
        files[path.relative_to(root).as_posix()] = (os.readlink(path) if path.is_symlink()
                                                    else hashlib.sha256(path.read_bytes()).hexdigest())
    return dict(files=files, refs=git(root, "for-each-ref"), head=git(root, "rev-parse", "HEAD"),
                status=git(root, "status", "--porcelain", "--ignored"),
                objects=git(root, "count-objects", "-v"))


def assert_refused(root: Path, cli, *args: str, says: str = "") -> str:
    """`autoresearch run ARGS` ends with exit 4, one line per error, no traceback, nothing written."""
    before = snapshot(root)
    r = cli("run", "--tag", "t1", *args)
    assert r.rc == 4, r
    assert "Traceback" not in r.err and "internal error" not in r.err, r
    assert re.search(says, r.err), r
    assert snapshot(root) == before  # results.tsv included: absent, or the very link it was
    assert not (root / ".autoresearch").exists()
    return r.err


def everything_written(root: Path) -> bytes:
    """Every object in the repository (all commits, trees and blobs), and every file outside .git."""
    out = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=root, capture_output=True).stdout
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and ".git" not in path.relative_to(root).parts:
            out += path.read_bytes()
    return out


# -------------------------------------------------------------------------------------------
# 1. No file leaves the machine: every diff header form, symlinked editable or output files

TRAIN_HEAD = FAKE_TRAIN.splitlines()[0]  # "LR = 0.01"

DIFFS = {
    "symlink, new file mode": f"""\
diff --git a/train.py b/train.py
deleted file mode 100644
--- a/train.py
+++ /dev/null
@@ -1 +0,0 @@
-{TRAIN_HEAD}
diff --git a/train.py b/train.py
new file mode 120000
--- /dev/null
+++ b/train.py
@@ -0,0 +1 @@
+{{secret}}
\\ No newline at end of file
""",
    "mode change to a symlink": """\
diff --git a/train.py b/train.py
old mode 100644
new mode 120000
""",
    "index line of a symlink": f"""\
diff --git a/train.py b/train.py
index 1111111..2222222 120000
--- a/train.py
+++ b/train.py
@@ -1 +1 @@
-{TRAIN_HEAD}
+{{secret}}
""",
    "rename": """\
diff --git a/prepare.py b/train.py
similarity index 100%
rename from prepare.py
rename to train.py
""",
    "copy": """\
diff --git a/prepare.py b/train.py
similarity index 100%
copy from prepare.py
copy to train.py
""",
    "a new file": """\
diff --git a/evil.py b/evil.py
new file mode 100644
--- /dev/null
+++ b/evil.py
@@ -0,0 +1 @@
+print("x")
""",
    "a new file, traditional form": """\
--- /dev/null
+++ b/train.py.orig
@@ -0,0 +1 @@
+x
""",
    "deleting the editable file": f"""\
--- a/train.py
+++ /dev/null
@@ -1 +0,0 @@
-{TRAIN_HEAD}
""",
    "binary patch": """\
diff --git a/train.py b/train.py
index 1111111..2222222 100644
GIT binary patch
literal 5
McmZQzWMXCj00DRa0RR91

literal 0
HcmV?d00001

""",
    "two different paths": f"""\
diff --git a/train.py b/other.py
--- a/train.py
+++ b/train.py
@@ -1 +1 @@
-{TRAIN_HEAD}
+LR = 0.02
""",
    "a hunk that hides a header": f"""\
--- a/train.py
+++ b/train.py
@@ -1 +1,2 @@
-{TRAIN_HEAD}
+LR = 0.02
+x = 1
--- a/../../outside.py
+++ b/../../outside.py
@@ -0,0 +1 @@
+x
""",
}


@pytest.mark.parametrize("form", list(DIFFS))
def test_no_diff_header_form_reads_or_writes_another_file(repo, cli, tmp_path, form):
    secret = tmp_path / "id_rsa"
    secret.write_text(SECRET + "\n")
    body = DIFFS[form].replace("{secret}", str(secret))
    hyp(repo, "steal", f"description = 'x'\nhypothesis = 'y'\ndiff = '''\n{body}'''\n")  # literal: no escapes
    assert_refused(repo, cli, says=r"ERROR experiments/steal\.toml:\d+: diff")
    assert SECRET.encode() not in everything_written(repo)
    assert not (repo.parent / "outside.py").exists()


def test_an_editable_file_that_is_a_symlink_is_refused(repo, cli, tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text(f"LR = 0.01  # {SECRET}\n")
    (repo / "train.py").unlink()
    (repo / "train.py").symlink_to(secret)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train.py is a link")
    simple(repo, "a", "LR = 0.02")
    assert_refused(repo, cli, says="editable file train.py is a symbolic link")
    assert secret.read_text() == f"LR = 0.01  # {SECRET}\n"


@pytest.mark.parametrize("output", ["experiments/journal.md", "experiments/lessons.md", "results.tsv"])
def test_outputs_are_never_written_through_a_symlink(repo, cli, output):
    (repo / output).parent.mkdir(parents=True, exist_ok=True)
    (repo / output).symlink_to(repo / "train.py")
    simple(repo, "a", "LR = 0.02")
    before = (repo / "train.py").read_bytes()
    assert_refused(repo, cli, says="is a symbolic link.*never writes through links")
    assert (repo / "train.py").read_bytes() == before


def test_an_output_path_that_is_the_code_is_refused(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert_refused(repo, cli, "--junitxml", "train.py", says="the project's code")
    assert_refused(repo, cli, "--junitxml", ".git/config", says="part of .git")
    assert_refused(repo, cli, "--junitxml", "experiments", says="is a folder")


SETTINGS_CASES = {
    'editable = ["../outside.py"]': "must be a path inside the project",
    'editable = ["/etc/hostname"]': "must be a path inside the project",
    'editable = ["./train.py"]\nprotected = ["train.py"]': "both editable and protected",
    'results_path = ".git/config"': "not in .git",
    'results_path = ""': "must be a path inside the project",
    'journal_path = "experiments"': "is a folder",
    'journal_path = "experiments/a.toml"': "a hypothesis file",
    'lessons_path = "../lessons.md"': "must be a path inside the project",
    'state_dir = "/tmp/elsewhere"': "must be a path inside the project",
    'command = "python \'train.py"': "No closing quotation",
    'command = ["python", "tra\\u0000in.py"]': "NUL byte",
    'command = ["python", "train.py", "--steps={budget_steps}"]': "budget_steps is not set",
    'prune_pattern = "(("': "not a valid regular expression",
    'metric = ""': "must be a metric's name",
    'workers = "100000"': "from 1 to 256",
    'state_dir = "experiments"': "state_dir",
    'state_dir = "experiments/state"': "where hypotheses are collected",
    'results_path = "experiments/journal.md"': "one place for both",
    'paths = ["../elsewhere"]': "on the command line",
    'budget = inf': "must be a finite number",
    'budget = 1e308': "out of range",
    'noise_k = nan': "must be a finite number",
    'cost_per_hour = 1e300': "out of range",
    'keep_threshold = "1e999%"': "must be a finite number",
    'mlflow_tracking_uri = "sqlite:///a\\u0000b.db"': "NUL byte",
    'metric_pattern = "\\u001b]52;c;ZXZpbA==\\u0007"': "control character",
    'mlflow_tracking_uri = "sqlite:///conftest.py"': "hypothesis file",
}


@pytest.mark.parametrize("setting", list(SETTINGS_CASES))
def test_bad_settings_are_one_line_before_anything_is_written(repo, cli, setting):
    text = (repo / "pyproject.toml").read_text()
    if setting.startswith("command"):  # the fixture's command is replaced, not repeated
        text = "\n".join(line for line in text.splitlines() if not line.startswith("command")) + "\n"
    (repo / "pyproject.toml").write_text(text + setting + "\n")
    git(repo, "commit", "-qam", "a setting")
    simple(repo, "a", "LR = 0.02")
    assert_refused(repo, cli, says=re.escape(SETTINGS_CASES[setting]))


@pytest.mark.parametrize("args, says", [
    (["-k", "(" * 3000 + "a" + ")" * 3000], "at most 500"),
    (["-k", "(" * 240 + "a" + ")" * 240], "nested too deep"),
    (["-k", "not " * 2000 + "a"], "at most 500"),
    (["-p", ""], "not a module name"),
    (["-p", "../x"], "not a module name"),
])
def test_bad_arguments_are_one_line(repo, cli, args, says):
    simple(repo, "a", "LR = 0.02")
    assert_refused(repo, cli, *args, says=re.escape(says))


def test_commands_never_write_onto_the_code_or_into_git(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1", "--repeats", "1").rc == 0
    before = (repo / "train.py").read_bytes(), (repo / ".git" / "config").read_bytes()
    for args, says in [(["report", "-o", "train.py"], "the project's code"), (["report", "-o", ".git/config"], ".git"),
                       (["report", "--plot", "x.txt"], "give a .png"), (["export", "-o", "train.py"], "the project's code"),
                       (["new", "x", "--set", "LR=0.5", "--dir", "../elsewhere"], "inside the project"),
                       (["new", "x", "--set", "LR=0.5", "--dir", ".git"], "inside the project"),
                       (["new", "x", "--set", "DEPTH=" + "9" * 5000], "too large"),
                       (["new", "x", "--set", "LR=" + "[" * 2000 + "]" * 2000], "nested too deep")]:
        r = cli(*args)
        assert r.rc == 4 and says in r.err and "Traceback" not in r.err, (args, r)
    assert ((repo / "train.py").read_bytes(), (repo / ".git" / "config").read_bytes()) == before
    assert not (repo.parent / "elsewhere").exists()


DOC = "    '''doc'''\n"
MISBEHAVING = {
    "expect with a number as a key": "@hypothesis(expect={1: '< 1'})\ndef lr(patch):\n" + DOC + "    patch.set(LR=0.02)\n",
    "sys.exit inside": "@hypothesis\ndef lr(patch):\n" + DOC + "    import sys; sys.exit(0)\n",
    "GeneratorExit": "@hypothesis\ndef lr(patch):\n" + DOC + "    raise GeneratorExit\n",
    "an exception whose str raises": "class E(Exception):\n    def __str__(self):\n        raise ValueError\n\n"
                                     "@hypothesis\ndef lr(patch):\n" + DOC + "    raise E()\n",
    "an escape in an exception": "@hypothesis\ndef lr(patch):\n" + DOC + "    raise ValueError('\\x1b[2J' * 50000)\n",
    "assigning the patch's records": "@hypothesis\ndef lr(patch):\n" + DOC + "    patch.sets = 5\n",
    "a broken signature": "@hypothesis\ndef lr(patch):\n" + DOC + "    patch.set(LR=0.02)\nlr.__signature__ = 5\n",
    "a sweep value that breaks lines": "@hypothesis(description='act {ACT:.0}', sweep={'ACT': ['relu\\nSigned-off-by: M']})\n"
                                       "def lr(patch, ACT):\n" + DOC,
}


@pytest.mark.parametrize("case", list(MISBEHAVING))
def test_python_hypotheses_that_misbehave_are_one_line(repo, cli, case):
    write(repo / "experiments" / "bad.py", "from autoresearch import hypothesis\n\n" + MISBEHAVING[case])
    err = assert_refused(repo, cli, says=r"ERROR experiments/bad\.py:\d+: ")
    assert "\x1b" not in err and all(len(line) < 1200 for line in err.splitlines()), err


# -------------------------------------------------------------------------------------------
# 2. One line, exit 4, never a traceback: values a user can write

TOML_CASES = {
    "an integer of thousands of digits": ('[set]\nLR = ' + "9" * 5000 + "\n", "integer"),
    "an integer beyond 2**63": ("[set]\nDEPTH = 99999999999999999999\n", r"beyond ±2\*\*63"),
    "arrays nested hundreds deep": ("[set]\nLR = " + "[" * 600 + "]" * 600 + "\n", "nested"),
    "a NUL byte in the description": ("", "control character"),
    "an ANSI escape in the description": ("", "control character"),
    "a 10,000-character description": ("", "at most 200"),
    "a name that is reserved": ('name = "best"\n', "reserved"),
    "a baseline that is itself": ('name = "me"\nbaseline = "me"\n', "the hypothesis itself"),
    "a baseline commit that does not exist": ('baseline = "deadbeefdeadbeef"\n', "not a commit of this repository"),
    "a sweep of a million": ("[sweep]\nLR = [" + ", ".join(str(i / 1e4) for i in range(1000)) + "]\nDEPTH = ["
                             + ", ".join(str(i) for i in range(1000)) + "]\n", "1,000,000 hypotheses"),
    "a sweep value that forges a trailer": ('description = "lr {ACT}"\n[sweep]\nACT = ["relu\\nSigned-off-by: Mallory"]\n',
                                            "control character or line break"),
    "a sweep format width": ('description = "lr {LR:>20000000}"\n[sweep]\nLR = [0.02]\n', ""),
    "a metric name with an escape": ('[expect]\n"val\\u001b[31m" = "< 1"\n', "not a metric name"),
    "an empty sweep list": ("[sweep]\nLR = []\n", "at least one value"),
}


def toml_case(case: str) -> str:
    extra, _ = TOML_CASES[case]
    description = {"a NUL byte in the description": "x\\u0000y", "an ANSI escape in the description": "\\u001b[2Jgone",
                   "a 10,000-character description": "d" * 10_000}.get(case, "x")
    head = 'hypothesis = "y"\n'
    if not extra.startswith("description"):
        head = f'description = "{description}"\n' + head
    return head + extra


@pytest.mark.parametrize("case", list(TOML_CASES))
def test_bad_toml_values_are_one_line_before_anything_is_written(repo, cli, case):
    simple(repo, "good", "LR = 0.02")
    hyp(repo, "bad", toml_case(case))
    if case == "a sweep format width":  # accepted: the width is refused as a format, the value filled in plain
        r = cli("run", "--collect-only")
        assert r.rc == 0 and "Traceback" not in r.err and len(r.out) < 2000, r
        return
    err = assert_refused(repo, cli, says=f"ERROR experiments/bad.toml:\\d+: .*{TOML_CASES[case][1]}")
    assert err.count("ERROR") == 1 and "\x1b" not in err and len(err) < 2000


PY_CASES = {
    "@hypothesis on a class": ("@hypothesis\nclass Lr:\n    '''doc'''\n", "decorates a class"),
    "@hypothesis on an async def": ("@hypothesis\nasync def lr(patch):\n    '''doc'''\n", "decorates an async function"),
    "a sweep that is not a list": ("@hypothesis(sweep={'LR': 0.02})\ndef lr(patch):\n    '''doc'''\n",
                                   "sweep must be a table"),
    "an empty sweep": ("@hypothesis(sweep={'LR': []})\ndef lr(patch):\n    '''doc'''\n", "at least one value"),
    "a lone surrogate in a replace": ("@hypothesis\ndef lr(patch):\n    '''doc'''\n"
                                      "    patch.replace('LR = 0.01', 'LR = 0.02  # \\ud800')\n", "lone surrogate"),
    "a huge integer": ("@hypothesis\ndef lr(patch):\n    '''doc'''\n    patch.set(DEPTH=10**5000)\n", "2\\*\\*63"),
}


@pytest.mark.parametrize("case", list(PY_CASES))
def test_bad_python_hypotheses_are_one_line(repo, cli, case):
    body, says = PY_CASES[case]
    write(repo / "experiments" / "bad.py", "from autoresearch import hypothesis\n\n" + body)
    assert_refused(repo, cli, says=f"ERROR experiments/bad.py:\\d+: .*{says}")


def test_an_aliased_decorator_is_collected(repo, cli):
    write(repo / "experiments" / "alias.py", "from autoresearch import hypothesis as idea\n\n"
          "@idea(description='lr up')\ndef lr(patch):\n    '''A higher LR.'''\n    patch.set(LR=0.02)\n")
    r = cli("run", "--collect-only")
    assert r.rc == 0 and "experiments/alias.py::lr" in r.out, r


def test_a_train_py_that_is_not_utf8_is_one_line(repo, cli):
    (repo / "train.py").write_bytes(FAKE_TRAIN.encode() + b"# caf\xe9\n")
    git(repo, "commit", "-qam", "latin-1")
    simple(repo, "a", "LR = 0.02")
    assert_refused(repo, cli, says=r"train\.py:\d+: not UTF-8 text")


def test_baseline_cycles_and_a_deselected_baseline_are_collection_errors(repo, cli):
    hyp(repo, "a", 'description = "a"\nhypothesis = "y"\nbaseline = "b"\n[set]\nLR = 0.02\n')
    hyp(repo, "b", 'description = "b"\nhypothesis = "y"\nbaseline = "a"\n[set]\nLR = 0.03\n')
    assert_refused(repo, cli, says="baseline cycle: a -> b -> a")
    hyp(repo, "b", 'description = "b"\nhypothesis = "y"\n[set]\nLR = 0.03\n')
    assert_refused(repo, cli, "-k", "a", says=r"experiments/a\.toml:1: baseline 'b' .* is not selected by -k")


def test_report_into_a_missing_folder_creates_it(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1", "--repeats", "1").rc == 0
    r = cli("report", "-o", "reports/deep/report.md")
    assert r.rc == 0 and (repo / "reports/deep/report.md").read_text().startswith("# autoresearch report")


def test_set_on_a_crlf_file_keeps_every_other_byte(repo, cli):
    crlf = FAKE_TRAIN.replace("\n", "\r\n").encode()
    (repo / "train.py").write_bytes(crlf)
    git(repo, "commit", "-qam", "crlf")
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1", "--repeats", "1").rc == 0
    committed = subprocess.run(["git", "show", "refs/autoresearch/t1/001-a:train.py"], cwd=repo,
                               capture_output=True).stdout
    assert committed == crlf.replace(b"LR = 0.01", b"LR = 0.02", 1)


def test_new_refuses_what_collection_would_refuse(repo, cli):
    before = snapshot(repo)
    r = cli("new", "lr up", "--set", "LR=0.02", "--baseline", "nothing_by_that_name")
    assert r.rc == 4 and "names no hypothesis" in r.err, r
    r = cli("new", "lr up", "--set", "LR=0.02", "--hypothesis", "   ")
    assert r.rc == 4 and "no hypothesis text" in r.err, r
    r = cli("new", "lr\nSigned-off-by: Mallory", "--set", "LR=0.02")
    assert r.rc == 4 and "control character or line break" in r.err, r
    assert snapshot(repo) == before


# -------------------------------------------------------------------------------------------
# The fuzz test: random hypothesis files and settings, the promise for every one

WORDS = st.sampled_from(["LR", "DEPTH", "ACT", "NOPE", "lr", "best", "initial", "a", "b", "x y", "", "val_bpb",
                         "train.py", "../x", "\x00", "\x1b[31m", "{LR}", "{LR:>99999}", "\ud7ff", "é"])
SCALARS = st.one_of(st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.floats(allow_nan=False, width=32),
                    st.booleans(), st.text(max_size=12), WORDS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(WORDS, inner, max_size=3)), max_leaves=6)
FIELD_NAMES = st.sampled_from(["name", "description", "hypothesis", "set", "replace", "diff", "expect", "baseline",
                               "sweep", "tags", "file", "allow_type_change", "bogus"])
EXPECTS = st.sampled_from(["< baseline", "<= baseline - 0.001", "> 1", "nonsense", "< baseline * 2", ""])
DIFF_HEADS = st.sampled_from(["--- a/train.py\n+++ b/train.py\n", "--- /dev/null\n+++ b/x.py\n",
                              "diff --git a/train.py b/train.py\nnew mode 120000\n", "GIT binary patch\n", ""])


@st.composite
def toml_files(draw) -> str:
    import tomli_w

    raw = {"description": draw(st.one_of(WORDS, st.text(max_size=30))), "hypothesis": draw(st.one_of(WORDS, st.text()))}
    for key in draw(st.lists(FIELD_NAMES, max_size=4, unique=True)):
        if key == "set":
            raw["set"] = draw(st.dictionaries(WORDS, VALUES, max_size=3))
        elif key == "sweep":
            raw["sweep"] = draw(st.dictionaries(WORDS, st.lists(SCALARS, max_size=3), max_size=2))
        elif key == "expect":
            raw["expect"] = draw(st.dictionaries(WORDS, EXPECTS, max_size=2))
        elif key == "diff":
            raw["diff"] = draw(DIFF_HEADS) + f"@@ -1 +1 @@\n-{TRAIN_HEAD}\n+LR = {draw(SCALARS)!r}\n"
        elif key == "replace":
            raw["replace"] = [{"old": draw(st.sampled_from(["LR = 0.01", "nothing", ""])), "new": draw(st.text(max_size=8))}]
        else:
            raw[key] = draw(VALUES)
    try:
        return tomli_w.dumps(raw)
    except Exception:  # a value TOML cannot hold (None, a lone surrogate): write it as raw text instead
        return f'description = {draw(WORDS)!r}\nhypothesis = "y"\n[set]\nLR = {draw(st.text(max_size=20))}\n'


@st.composite
def near_valid_toml(draw) -> str:
    """A file that would run, with one part drawn from anywhere: the edge between run and refused."""
    import tomli_w

    printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))
    raw = {"description": draw(st.text(printable, min_size=1, max_size=40)
                               | st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)),
           "hypothesis": draw(st.sampled_from(["A higher LR.", "Two lines:\nwhy and how.", "A higher LR.", " "])),
           "set": {"LR": draw(st.one_of(st.floats(0.001, 0.1), st.floats(0.001, 0.1), SCALARS))}}
    if draw(st.booleans()):
        raw["expect"] = {"val_bpb": draw(EXPECTS)}
    if draw(st.booleans()):
        raw["sweep"] = {"LR": draw(st.lists(st.floats(0.001, 0.1), min_size=1, max_size=2))}
        raw["description"] += draw(st.sampled_from([" {LR}", " {LR:.2g}", " {LR:>5}", "{LR!r}", "{0}"]))
    try:
        return tomli_w.dumps(raw)
    except Exception:
        return 'description = "lr"\nhypothesis = "y"\n[set]\nLR = 0.02\n'


@st.composite
def python_files(draw) -> str:
    args = draw(st.dictionaries(st.sampled_from(["description", "sweep", "baseline", "tags", "expect", "name"]),
                                VALUES, max_size=3))
    target = draw(st.sampled_from(["def lr(patch):", "async def lr(patch):", "class Lr:", "def lr():"]))
    call = draw(st.sampled_from(["patch.set(LR={v!r})", "patch.set(NOPE={v!r})", "patch.replace('LR = 0.01', {v!r})",
                                 "patch.diff({v!r})", "pass"])).format(v=draw(SCALARS))
    return (f"from autoresearch import hypothesis as h\n\n@h(**{args!r})\n{target}\n"
            f"    '''{draw(st.sampled_from(['doc', '']))}'''\n    {call if 'patch' in target else 'pass'}\n")


SETTINGS = st.just({}) | st.just({}) | st.dictionaries(st.sampled_from(["budget", "repeats", "max_sweep", "noise_k", "editable", "metric",
                                            "keep_threshold", "prune_after", "timeout"]), VALUES, max_size=2)


def fresh_repo(base: Path, settings_table: dict) -> Path:
    import tomli_w

    root = Path(tempfile.mkdtemp(dir=base))
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    table = {"command": [sys.executable, "train.py"], "repeats": 1, "lessons_every": 1000, **settings_table}
    try:
        text = tomli_w.dumps({"tool": {"autoresearch": table}})
    except Exception:
        text = tomli_w.dumps({"tool": {"autoresearch": {k: v for k, v in table.items() if k not in settings_table}}})
    (root / "pyproject.toml").write_text(text)
    (root / "experiments").mkdir()
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=f@f", "-c", "user.name=f", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=st.lists(st.one_of(near_valid_toml(), near_valid_toml(), toml_files(), python_files()),
                      min_size=1, max_size=2),
       table=SETTINGS)
def test_fuzz_any_hypothesis_file_or_setting_is_run_or_one_line_and_nothing_written(tmp_path, capsys, monkeypatch,
                                                                                  files, table):
    root = fresh_repo(tmp_path, table)
    for i, text in enumerate(files):
        (root / "experiments" / f"h{i}{'.py' if text.startswith('from autoresearch') else '.toml'}").write_text(
            text, encoding="utf-8", errors="surrogateescape")
    monkeypatch.chdir(root)
    before = snapshot(root)
    try:
        rc = main(["run", "--tag", "fz", "--budget", "30"])
    finally:
        monkeypatch.chdir(tmp_path)
    err = capsys.readouterr().err
    event(f"exit {rc}")  # pytest --hypothesis-show-statistics: how many ran, were refused, collected nothing
    assert rc in (0, 4, 5), (rc, err, files, table)
    assert "Traceback" not in err and "internal error" not in err, err
    if rc == 4:
        assert snapshot(root) == before, err
        assert not (root / ".autoresearch").exists() and not (root / "results.tsv").exists(), err
        assert all(len(line) < 2000 and "\x1b" not in line for line in err.splitlines()), err


def test_control_characters_a_workload_prints_are_shown_escaped(repo, cli):
    (repo / "train.py").write_text(FAKE_TRAIN.replace('if CRASH == "exit":', 'if CRASH == "ansi":\n'
                                                      '    print("error: \\x1b[2J\\x1b[31mscreen wiped")\n'
                                                      '    sys.exit(1)\nif CRASH == "exit":'))
    git(repo, "commit", "-qam", "a workload that prints escapes")
    simple(repo, "a", 'CRASH = "ansi"')
    r = cli("run", "--tag", "t1", "--repeats", "1")
    assert r.rc == 0, r
    assert "\x1b" not in r.out and "error: \\x1b[2J\\x1b[31mscreen wiped" in r.out
    for output in ("results.tsv", "experiments/journal.md"):
        assert "\x1b" not in (repo / output).read_text()


def test_sweep_descriptions_keep_their_old_text_and_keys(repo, cli):
    from autoresearch.model import Hypothesis, parametrize

    h = Hypothesis(name="bs", description="batch {BS:,} at {LR!r} {{literal}}", hypothesis="h", path="x.toml")
    assert parametrize(h, (("BS", 65536), ("LR", 0.02))).description == "batch 65,536 at 0.02 {literal}"
    other = Hypothesis(name="bs", description="batch {BS} and {OTHER}", hypothesis="h", path="x.toml")
    assert parametrize(other, (("BS", 8),)).description == "batch {BS} and {OTHER} (BS=8)"  # as before
    bomb = Hypothesis(name="bs", description="lr {LR:>999999999}", hypothesis="h", path="x.toml")
    assert parametrize(bomb, (("LR", 0.02),)).description == "lr {LR:>999999999} (LR=0.02)"  # a width bomb: not filled


def test_the_diff_header_check_splits_lines_as_git_does(repo, cli):
    from autoresearch.errors import PatchError
    from autoresearch.patching import check_diff_paths

    sneaky = ("--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 0.01\n+LR = 0.02\n"
              "junk\x0c@@ -0,0 +1,2 @@\n--- /dev/null\n+++ b/evil.txt\n@@ -0,0 +1 @@\n+x\n")
    with pytest.raises(PatchError, match="creates a file"):
        check_diff_paths(sneaky, ["train.py"], [])


def test_init_and_imports_refuse_what_would_write_through_links_or_damage(repo, cli, tmp_path):
    (repo / "pyproject.toml").unlink()
    (repo / "pyproject.toml").symlink_to(repo / "train.py")
    before = (repo / "train.py").read_bytes()
    r = cli("init")
    assert r.rc == 4 and "pyproject.toml is a symbolic link" in r.err, r
    assert (repo / "train.py").read_bytes() == before and not (repo / "program.md").exists()
    (repo / "pyproject.toml").unlink()
    (repo / "program.md").symlink_to(repo / ".git" / "hooks" / "post-commit")
    assert cli("init").rc == 4 and not (repo / ".git" / "hooks" / "post-commit").exists()
    # a truncated export, and one whose ledger is nested thousands deep: one line, nothing fetched
    (repo / "program.md").unlink()
    (repo / "pyproject.toml").write_text('[tool.autoresearch]\nrepeats = 1\ncommand = ["python", "train.py"]\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "settings")
    (tmp_path / "short.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    r = cli("import", str(tmp_path / "short.tar.gz"))
    assert r.rc == 4 and "not an autoresearch export" in r.err and "Traceback" not in r.err, r
    assert "autoresearch/" not in git(repo, "for-each-ref")


def test_a_damaged_ledger_is_one_line(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1", "--repeats", "1").rc == 0
    ledger = repo / ".autoresearch" / "runs" / "t1" / "ledger.jsonl"
    ledger.write_text(ledger.read_text() + '{"event": "start"}\n')
    for command in ("status", "report"):
        r = cli(command)
        assert r.rc == 4 and "the run's record is damaged" in r.err and "Traceback" not in r.err, r


def test_settings_that_reach_into_git_or_through_links(repo, cli):
    (repo / "gl").symlink_to(repo / ".git")
    git(repo, "add", "gl")
    git(repo, "commit", "-qm", "a link to .git")
    simple(repo, "a", "LR = 0.02")
    assert_refused(repo, cli, "--junitxml", "gl/hooks/pre-commit", says="part of .git")
    text = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(text + 'state_dir = "gl/state"\n')
    git(repo, "commit", "-qam", "state through the link")
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and "outside the project or into .git" in r.err, r
    assert not (repo / ".git" / "state").exists()
    (repo / "pyproject.toml").write_text(text.replace("[tool.autoresearch]", "tool = 5\n[x]"))  # tool not a table
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and "Traceback" not in r.err, r
