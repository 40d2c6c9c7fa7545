"""Settings: whatever value any setting is given, in pyproject.toml or on the command line, a run
starts or is refused with one line before anything is written.

The settings are the real Parser's, so a setting a plugin adds later is fuzzed without a change
here. A run that passes every start-up check is stopped at its first write, the lock (as Ctrl-C
would stop it there: exit 130), so a thousand settings take seconds rather than a run each.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from autoresearch import pluginmanager
from autoresearch.checks import ROLES
from autoresearch.cli import main, make_parser
from autoresearch.config import RANGES, Parser, inside
from conftest import FAKE_TRAIN, git

PASSED = 130  # every start-up check passed: stopped at the lock, before the first write


def real_settings() -> dict:
    parser = Parser()
    pluginmanager.build(Path.cwd(), ["run"], with_conftest=False).hook.autoresearch_addoption.call_historic(
        kwargs=dict(parser=parser))
    make_parser(parser)  # where cli.py declares `paths`
    return parser.settings


SETTINGS = real_settings()
NUMERIC = sorted(n for n, s in SETTINGS.items() if s.type in RANGES)
TEXT = sorted(n for n, s in SETTINGS.items() if s.type in ("str", "list", "args", "table", "amount"))


def written(root: Path) -> dict:
    """Everything a run could write: every file outside .git (by hash), the refs, HEAD, the index."""
    files = {}
    for path in sorted(root.rglob("*")):
        if ".git" not in path.relative_to(root).parts and (path.is_file() or path.is_symlink()):
            files[path.relative_to(root).as_posix()] = (os.readlink(path) if path.is_symlink()
                                                        else hashlib.sha256(path.read_bytes()).hexdigest())
    git_dir = root / ".git"
    return dict(files=files, refs=git(root, "for-each-ref"), head=(git_dir / "HEAD").read_text(),
                index=hashlib.sha256((git_dir / "index").read_bytes()).hexdigest(),
                worktrees=sorted(p.name for p in (git_dir / "worktrees").glob("*")))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("settings") / "project"
    (root / "experiments").mkdir(parents=True)
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    (root / "README.md").write_text("a tracked file that is not code\n")
    (root / "src").mkdir()
    (root / "src" / "model.py").write_text("X = 1\n")
    (root / "experiments" / "a.toml").write_text('description = "a"\nhypothesis = "h"\n[set]\nLR = 0.02\n')
    (root / "pyproject.toml").write_text("")
    git(root, "init", "-q", "-b", "main")
    for args in (["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        git(root, *args)
    return root


def start(root: Path, table: str, *args: str, capsys, monkeypatch, setup=None) -> tuple[int, str, dict]:
    """`autoresearch run --tag t1 ARGS` with `table` as [tool.autoresearch] (committed) in a clean tree
    (`setup` then adds what the case needs); returns the exit code (PASSED: it reached the lock),
    stderr, and what was there before and after."""
    import autoresearch.main

    subprocess.run(["git", "reset", "-q", "--hard", "HEAD"], cwd=root, check=True)
    subprocess.run(["git", "clean", "-qfdx"], cwd=root, check=True)
    if setup:
        setup()
    command = "" if table.startswith("command") else f'command = ["{sys.executable}", "train.py"]\n'
    (root / "pyproject.toml").write_text(f"[tool.autoresearch]\n{command}{table}", encoding="utf-8",
                                         errors="surrogateescape")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "settings", "--allow-empty")
    before = written(root)

    def lock(self):
        raise KeyboardInterrupt

    monkeypatch.chdir(root)
    monkeypatch.setattr(autoresearch.main.Lock, "__enter__", lock)
    capsys.readouterr()
    rc = main(["run", "--tag", "t1", *args])
    err = capsys.readouterr().err
    return rc, err, {"before": before, "after": written(root)}


def assert_one_line(rc: int, err: str, wrote: dict, root: Path) -> None:
    """Refused: exit 4, one line, no traceback, nothing written; or it passed every check."""
    assert rc in (4, 5, PASSED), (rc, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert "\x1b" not in err and "\x00" not in err, err
    if rc == 4:
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(err.splitlines()) == 1 and len(errors) == 1 and len(err) < 1000, err
        assert wrote["after"] == wrote["before"], err
        assert not (root / ".autoresearch").exists()


# -------------------------------------------------------------------------------------------
# Random values of every setting's type, and hostile ones, through pyproject.toml and the command line

HOSTILE_TEXT = ["", " ", "\x00", "a\x00b", "\x1b[2J\x1b[31mred", "\x1b]52;c;ZXZpbA==\x07", "line\nbreak", "tab\there",
                "\u2028", "\x7f", "é", "../x", "/etc/passwd", ".git/config", ".git", ".", "..", "train.py",
                "experiments", "experiments/a.toml", "README.md", "src", "x" * 5000, "TODO: fill in", "{budget_steps}",
                "%s%n", "1e999%", "nan%", "-1%", "0.1%", "inf", "nan", "1e308", "-1", "0", "sqlite:///conftest.py",
                "sqlite:///train.py", "sqlite:///README.md", "sqlite:///a\x00b.db", "file:///etc", "((", "(?P<value>"]
HOSTILE_NUMBERS = [math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324, -1, 0, 1, 1e6, 1e6 + 1, 10 ** 9, 10 ** 9 + 1,
                   2 ** 63, -2 ** 63, 10 ** 30, 0.5, 1.0]
TEXTS = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=20) | st.text(st.characters(codec="utf-8"), max_size=8)
NUMBERS = (st.sampled_from(HOSTILE_NUMBERS) | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True))
OF_TYPE = {"int": st.integers(0, 100) | st.integers(-10, 2 ** 70) | st.sampled_from(HOSTILE_NUMBERS),
           "float": st.floats(0, 1000) | NUMBERS,
           "amount": NUMBERS | TEXTS, "str": TEXTS, "bool": st.booleans(), "list": st.lists(TEXTS, max_size=3) | TEXTS,
           "args": st.lists(TEXTS, max_size=3) | TEXTS, "table": st.dictionaries(TEXTS, TEXTS, max_size=2),
           "numbers": st.dictionaries(TEXTS, NUMBERS, max_size=2)}
ANY_TYPE = st.one_of(*OF_TYPE.values(), st.lists(NUMBERS, max_size=2), st.dictionaries(TEXTS, NUMBERS, max_size=1))


def toml_line(name: str, value) -> str | None:
    """`name = value` as TOML (None: TOML cannot hold the value, a lone surrogate or an out-of-range int)."""
    import tomli_w

    try:
        return tomli_w.dumps({name: value}) if not isinstance(value, dict) else tomli_w.dumps({name: value}).replace(
            f"[{name}]", f"[tool.autoresearch.{name}]")
    except (ValueError, TypeError, UnicodeEncodeError, OverflowError):
        return None


def command_line(name: str, value) -> list[str] | None:
    """The flag and its argument as a shell would pass them (None: no flag, or not a command-line value)."""
    s = SETTINGS[name]
    if not s.flags or isinstance(value, dict):
        return None
    if s.type == "bool" or isinstance(value, bool):
        return [s.flags[-1] if value else "--no-" + s.flags[-1].removeprefix("--")] if s.type == "bool" else None
    if isinstance(value, list):
        value = shlex.join(map(str, value)) if s.type == "args" else ",".join(map(str, value))
    return [f"{s.flags[-1]}={value}"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(names=st.lists(st.sampled_from(sorted(SETTINGS)), min_size=1, max_size=3, unique=True), data=st.data())
@example(names=["budget"], data=None)
def test_fuzz_every_setting_with_values_of_its_type_and_hostile_ones(project, capsys, monkeypatch, names, data):
    lines, tables, args = [], [], []
    for name in names:
        value = 1e308 if data is None else data.draw(OF_TYPE[SETTINGS[name].type] | ANY_TYPE, label=name)
        channel = "toml" if data is None else data.draw(st.sampled_from(["toml", "command line"]), label="through")
        if channel == "toml" and toml_line(name, value) is not None:
            (tables if isinstance(value, dict) else lines).append(toml_line(name, value))  # a [table] ends the rest
        elif channel == "command line" and command_line(name, value) is not None:
            args += command_line(name, value)
        else:
            continue  # TOML cannot hold it, or the setting has no flag
        event(f"{SETTINGS[name].type} through the {channel}")
    if any("\x00" in a for a in args):  # no program receives a NUL in its arguments
        return
    rc, err, wrote = start(project, "".join(lines + tables), *args, capsys=capsys, monkeypatch=monkeypatch)
    event(f"exit {rc}")  # pytest --hypothesis-show-statistics: how many passed, were refused
    assert_one_line(rc, err, wrote, project)


# -------------------------------------------------------------------------------------------
# Numbers: finite, in a documented range


def test_every_numeric_setting_has_a_range_its_help_shows():
    for name in NUMERIC:
        s = SETTINGS[name]
        low, high = s.range
        assert math.isfinite(low) and math.isfinite(high) and low <= high, name
        assert f"(from {low:,} to {high:,})".replace(".0 ", " ").replace(".0)", ")") in s.help, (name, s.help)
    assert "from 0 to 1)" in SETTINGS["prune_after"].help
    assert "from 0 to 1,000,000)" in SETTINGS["budget"].help
    out = subprocess.run([sys.executable, "-m", "autoresearch", "--help"], capture_output=True, text=True).stdout
    assert "(from 0 to 1,000,000)" in " ".join(out.split())


@pytest.mark.parametrize("value", ["inf", "nan", "1e308"])  # -1, 2 ** 63...: the fuzz's
def test_numbers_that_are_not_finite_or_out_of_range_are_one_line(project, capsys, monkeypatch, value):
    for name in NUMERIC:
        s = SETTINGS[name]
        literal = value if s.type != "amount" or value.endswith("inf") or value == "nan" else f'"{value}%"'
        if s.type == "int" and value in ("inf", "-inf", "nan", "1e400"):
            literal = str(2 ** 62 if "-" not in value else -2 ** 62)
        rc, err, wrote = start(project, f"{name} = {literal}\n", capsys=capsys, monkeypatch=monkeypatch)
        assert rc == 4 and name in err, (name, literal, err)
        assert_one_line(rc, err, wrote, project)
        if s.flags and s.type != "int":
            rc, err, wrote = start(project, "", f"{s.flags[-1]}={value}", capsys=capsys, monkeypatch=monkeypatch)
            assert rc == 4 and "command line" in err and name in err, (name, value, err)


def test_the_derived_timeout_of_the_largest_budget_is_finite(project, capsys, monkeypatch):
    from autoresearch.execute import timeout

    rc, err, _ = start(project, "budget = 1e6\n", capsys=capsys, monkeypatch=monkeypatch)
    assert rc == PASSED, err

    class Config:
        def get(self, name):
            return {"budget": 1e6, "timeout": None}[name]

    assert math.isfinite(timeout(Config())) and timeout(Config()) == 2e6


# -------------------------------------------------------------------------------------------
# Text: no control character in any string setting


@pytest.mark.parametrize("bad, says", [("a\x00b", "NUL byte"), ("\x1b]52;c;ZXZpbA==\x07", "control character"),
                                       ("x" * 5000, "at most 4,096")])  # "\n", "\u2028"...: the fuzz's
def test_control_characters_and_huge_texts_in_any_string_setting_are_one_line(project, capsys, monkeypatch, bad,
                                                                              says):
    for name in TEXT:
        s = SETTINGS[name]
        value = {"list": [bad], "table": {"m": bad}}.get(s.type, bad)
        if s.type == "args":
            value = ["python", bad]
        rc, err, wrote = start(project, toml_line(name, value), capsys=capsys, monkeypatch=monkeypatch)
        assert rc == 4 and says in err and name in err, (name, err)
        assert_one_line(rc, err, wrote, project)
    rc, err, _ = start(project, 'mlflow_tracking_uri = "sqlite:///a\\u0000b.db"\n', capsys=capsys,
                       monkeypatch=monkeypatch)
    assert rc == 4 and "mlflow_tracking_uri has a NUL byte" in err, err


# -------------------------------------------------------------------------------------------
# Paths: no two path settings on one place


def test_every_path_setting_has_a_role():
    """A new setting checked as a path inside the project must say what it is (checks.ROLES)."""
    paths = {n for n, s in SETTINGS.items() if s.check is inside}
    assert paths <= set(ROLES), sorted(paths - set(ROLES))
    assert set(ROLES) <= set(SETTINGS)


def as_toml(name: str, value: str) -> str:
    return f"{name} = {[value] if SETTINGS[name].type == 'list' else value!r}\n".replace("'", '"')


@pytest.mark.parametrize("a, b", list(itertools.combinations(sorted(ROLES), 2)))
def test_every_pair_of_path_settings_on_one_place_is_one_line(project, capsys, monkeypatch, a, b):
    for place, other in (("shared", "./shared"), ("src/shared", "src/./shared")):
        rc, err, wrote = start(project, as_toml(a, place) + as_toml(b, other), capsys=capsys, monkeypatch=monkeypatch)
        assert rc == 4 and a in err and b in err, (a, b, place, err)
        assert_one_line(rc, err, wrote, project)


@pytest.mark.parametrize("name", sorted(ROLES))
def test_an_mlflow_store_on_any_path_setting_is_one_line(project, capsys, monkeypatch, name):
    pytest.importorskip("mlflow")
    value = {"state_dir": "state", "results_path": "out.tsv", "journal_path": "notes/journal.md",
             "lessons_path": "lessons.md", "paths": "experiments", "editable": "train.py", "protected": "prepare.py",
             "link": "data.bin"}[name]

    def data() -> None:  # what link names: untracked data
        (project / "data.bin").write_text("data")
        (project / ".git" / "info" / "exclude").write_text("data.bin\n")

    table = as_toml(name, value) + f'mlflow_tracking_uri = "sqlite:///{value}"\n'
    rc, err, wrote = start(project, table, capsys=capsys, monkeypatch=monkeypatch, setup=data)
    assert rc == 4 and "mlflow_tracking_uri" in err, (name, err)
    assert_one_line(rc, err, wrote, project)


@pytest.mark.parametrize("table, args, says", [
    ('state_dir = "experiments"\n', [], "state_dir"),
    ('state_dir = "experiments/state"\n', [], "where hypotheses are collected"),
    ('state_dir = "run"\npaths = ["run/hypotheses"]\n', [], "inside the state folder"),
    ('state_dir = "src"\n', [], "holds files git tracks"),
    ('state_dir = "notes"\n', ["notes/h.toml"], "inside the state folder"),
    ('results_path = "experiments/journal.md"\n', [], "one place for both"),
    ('lessons_path = "results.tsv/lessons.md"\n', [], "inside a file the runner writes"),
    ('mlflow_tracking_uri = "sqlite:///conftest.py"\n', [], "hypothesis file"),
    ('mlflow_tracking_uri = "sqlite:///README.md"\n', [], "a file git tracks"),
    ('mlflow_tracking_uri = "sqlite:///../elsewhere/empty.db"\n', [], "is not an SQLite database"),
    ('paths = ["../elsewhere"]\n', [], "must be a path inside the project"),
    ('paths = ["outside"]\n', [], "leads outside the project"),
])
def test_places_that_collide_are_one_line_before_anything_runs(project, capsys, monkeypatch, table, args, says):
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "evil.py").write_text(f"open({str(elsewhere / 'ran')!r}, 'w').close()\n")
    (elsewhere / "empty.db").write_bytes(b"")

    def places() -> None:
        (project / "notes").mkdir()
        (project / "notes" / "h.toml").write_text('description = "n"\nhypothesis = "h"\n[set]\nLR = 0.03\n')
        (project / "outside").symlink_to(elsewhere)
        (project / ".git" / "info" / "exclude").write_text("outside\n")

    rc, err, wrote = start(project, table, *args, capsys=capsys, monkeypatch=monkeypatch, setup=places)
    assert rc == 4 and says in err, (table, err)
    assert_one_line(rc, err, wrote, project)
    assert not (elsewhere / "ran").exists() and (elsewhere / "empty.db").read_bytes() == b""


def test_a_path_outside_the_project_on_the_command_line_is_collected_on_purpose(project, capsys, monkeypatch):
    elsewhere = project.parent / "on-purpose"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "b.toml").write_text('description = "b"\nhypothesis = "h"\n[set]\nLR = 0.04\n')
    rc, err, _ = start(project, "", str(elsewhere), "--collect-only", capsys=capsys, monkeypatch=monkeypatch)
    assert rc == 0, err
    rc, err, _ = start(project, 'paths = ["."]\n', "--collect-only", capsys=capsys, monkeypatch=monkeypatch)
    assert rc == 0, err  # the state folder inside it is hidden: never searched


@pytest.mark.parametrize("output", ["journal_path", "results_path", "lessons_path"])
def test_an_output_hard_linked_to_the_code_is_one_line(project, capsys, monkeypatch, output):
    path = project / "out" / "file.md"
    code = (project / "train.py").read_bytes()
    start(project, "", capsys=capsys, monkeypatch=monkeypatch)  # a clean tree first
    path.parent.mkdir()
    os.link(project / "train.py", path)
    (project / ".git" / "info" / "exclude").write_text("out\n")
    table = f'command = ["{sys.executable}", "train.py"]\n{output} = "out/file.md"\n'
    (project / "pyproject.toml").write_text(f"[tool.autoresearch]\n{table}")
    git(project, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "settings")
    monkeypatch.chdir(project)
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--tag", "t1"], capture_output=True, text=True)
    assert r.returncode == 4 and "hard link (the same file as train.py)" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1 and (project / "train.py").read_bytes() == code
    assert not (project / ".autoresearch").exists()
