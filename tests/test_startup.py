"""--help, status, show and diff start from the record of what the built-in plugins declare
(autoresearch/startup.py), and say exactly what they say with every plugin loaded."""
from __future__ import annotations

import sys

import pytest

from autoresearch import pluginmanager, startup
from conftest import simple, write


@pytest.fixture
def record(tmp_path, monkeypatch):
    """The record kept in a folder of this test's own (written although the tests run with
    PYTHONDONTWRITEBYTECODE); returns a function telling whether the last command started light."""
    monkeypatch.setattr(startup, "path", lambda: tmp_path / "record" / "startup.marshal")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    startup._memo.clear()
    builds = []
    build = pluginmanager.build
    monkeypatch.setattr(pluginmanager, "build", lambda *a, **k: builds.append(a) or build(*a, **k))

    def loaded_plugins() -> bool:
        was = bool(builds)
        builds.clear()
        return was

    yield loaded_plugins
    startup._memo.clear()


def forget(tmp_path) -> None:
    (tmp_path / "record" / "startup.marshal").unlink()
    startup._memo.clear()


def test_help_from_the_record_is_the_help_with_every_plugin(repo, cli, record, tmp_path):
    first = cli("--help")
    assert first.rc == 0 and record()  # no record yet: the plugins load, and what they declare is kept
    assert (tmp_path / "record" / "startup.marshal").is_file()
    again = cli("--help")
    assert again.rc == 0 and not record(), "--help loaded the plugins although a record was there"
    assert again.out == first.out and "cost_budget (--cost-budget) = None" in again.out
    assert "mlflow_tracking_uri" in again.out and "--workers" in again.out
    assert cli("status", "--help").out == cli("status", "--help").out and not record()
    assert cli().rc == 4 and not record()  # no command: the help, exit 4


def test_status_show_and_diff_start_without_the_plugins_and_say_the_same(repo, cli, record, tmp_path):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "LR = 0.05")
    assert cli("run", "--tag", "t1", "-k", "a").rc == 0 and record()
    light = [cli(*args) for args in (("status",), ("status", "--json"), ("show",), ("show", "--json"),
                                     ("diff", "baseline", "a"))]
    assert not record(), "a light command loaded every plugin"
    forget(tmp_path)
    full = [cli(*args) for args in (("status",), ("status", "--json"), ("show",), ("show", "--json"),
                                    ("diff", "baseline", "a"))]
    assert record()
    assert [(r.rc, r.out, r.err) for r in light] == [(r.rc, r.out, r.err) for r in full]
    assert "experiments/b.toml::b" in light[0].out  # queued: collected through the collect plugin's hook


@pytest.mark.parametrize("setting, said", [
    ('notify_webhook_env = "NOT A NAME"', "must be an environment variable's name"),  # a lambda in a plugin
    ("workers = \"0\"", "give a number from 1 to 256, or auto"),  # a function of a plugin not imported
    ("editable = []", "give at least one file"),
    ("budget = -1", "must be more than 0"),
])
def test_a_setting_is_checked_by_its_own_plugin_without_loading_the_others(repo, cli, record, setting, said):
    assert cli("--help").rc == 0
    record()
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + setting + "\n")
    light = cli("status")
    assert not record() and light.rc == 4 and said in light.err, light
    write(repo / "conftest.py", "")  # something besides the built-in plugins: they all load, as before
    full = cli("status")
    assert record() and (full.rc, full.err) == (light.rc, light.err)


def test_a_conftest_or_dash_p_loads_the_plugins_and_its_settings_are_listed(repo, cli, record, tmp_path):
    assert cli("--help").rc == 0
    record()
    write(repo / "conftest.py", """\
        def autoresearch_addoption(parser):
            parser.addsetting("my_knob", default=3, type="int", help="a knob of this project's own")
        """)
    out = cli("--help").out
    assert record() and "my_knob = 3" in out and "a knob of this project's own" in out
    (repo / "conftest.py").unlink()
    assert "my_knob" not in cli("--help").out and not record()
    assert cli("status", "-p", "no:journal").rc == 4 and record()  # -p: the plugins load (no run yet: 4)


def test_the_record_is_only_for_the_code_it_was_made_from(tmp_path, monkeypatch):
    code = tmp_path / "code"
    write(code / "a.py", "X = 1\n")
    monkeypatch.setattr(startup, "sources", lambda: [code])
    before = startup.fingerprint()
    assert startup.fingerprint() == before
    write(code / "a.py", "X = 22\n")  # another size
    assert startup.fingerprint() != before
    write(code / "b.py", "")
    assert startup.fingerprint() != before


def test_the_command_a_command_line_names():
    assert startup.command_of([]) == (None, False)
    assert startup.command_of(["--help"]) == (None, True)
    assert startup.command_of(["status", "--json"]) == ("status", False)
    assert startup.command_of(["--help", "show"]) == ("show", True)


def test_entry_points_are_read_again_when_a_package_is_installed(record, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert ("recorder", "recorder_plugin") not in startup.entry_points("autoresearch")
    assert (tmp_path / "record" / f"folders-autoresearch.{sys.implementation.cache_tag}.marshal").is_file()  # kept
    write(site / "recorder_plugin-1.0.dist-info" / "entry_points.txt", "[autoresearch]\nrecorder = recorder_plugin\n")
    assert ("recorder", "recorder_plugin") in startup.entry_points("autoresearch")  # the folder changed
    assert ("recorder", "recorder_plugin") in startup.entry_points("autoresearch")  # and is kept so
