"""The numbers commands take on their own command line (report --cost-per-hour, calibrate --runs), fuzzed
like every setting (tests/test_settings.py): finite and within a documented range, or one line, exit 4,
nothing written, no traceback."""
from __future__ import annotations

import math
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from autoresearch.cli import main
from autoresearch.commands.calibrate import MAX_RUNS
from test_settings import HOSTILE_NUMBERS, NUMBERS, TEXTS, project, written  # noqa: F401 (project: the fixture)

VALUES = NUMBERS | TEXTS | st.sampled_from(HOSTILE_NUMBERS)


def number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def call(root, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(root)
    capsys.readouterr()
    rc = main(list(args))
    return rc, capsys.readouterr().err


def one_line(rc: int, err: str) -> None:
    assert rc == 4, (rc, err)
    assert len(err.splitlines()) == 1 and err.startswith("autoresearch: error: ") and len(err) < 1000, err
    assert "Traceback" not in err and "\x1b" not in err and "\x00" not in err, err


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
@example(value=math.nan)
@example(value=math.inf)
@example(value=1e308)
@example(value=-1)
def test_report_cost_per_hour_is_finite_and_in_range_or_one_line(project, monkeypatch, capsys, value):
    before = written(project)
    rc, err = call(project, monkeypatch, capsys, "report", f"--cost-per-hour={value}")
    x = number(value)
    if x is None or not math.isfinite(x) or not 0 <= x <= 1e6:
        one_line(rc, err)
        assert "cost" in err, err
    else:  # accepted: the report then says what it says of a project with no run yet
        assert "cost" not in err and "Traceback" not in err, (value, err)
    assert written(project) == before


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES | st.integers(-10, 2 * MAX_RUNS))
@example(value=1)
@example(value=2)
@example(value=MAX_RUNS)
@example(value=MAX_RUNS + 1)
@example(value=10 ** 20)
def test_calibrate_runs_is_within_its_range_or_one_line(project, monkeypatch, capsys, value):
    def started(path, *args, **kwargs):  # calibrate got past its checks: stopped before its first write
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", started)
    before = written(project)
    try:
        rc, err = call(project, monkeypatch, capsys, "calibrate", f"--runs={value}")
    finally:
        monkeypatch.undo()
    x = number(value)
    if x is not None and x.is_integer() and 2 <= x <= MAX_RUNS and str(value).strip().lstrip("+-").isdigit():
        assert rc == 130, (value, rc, err)  # accepted: on to its runs
    else:
        one_line(rc, err)
        assert "runs" in err, err
    assert written(project) == before


@pytest.mark.parametrize("command", [["calibrate", "--help"], ["report", "--help"]])
def test_the_help_shows_the_range(command, capsys):
    assert main(command) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("from 2 to 1,000" in out) if command[0] == "calibrate" else ("from 0 to 1,000,000" in out), out
