"""The plugin system: entry points, -p, hook order, the progress hook, and the hook contract."""
from __future__ import annotations

import inspect
import json
import re

from autoresearch import hookspec
from autoresearch.plugins.results_tsv import read_results
from conftest import git, run_subprocess, simple, write

RECORDER = '''
import json, os
from autoresearch import hookimpl

OUT = os.environ["RECORD_TO"]


def record(*event):
    with open(OUT, "a") as f:
        f.write(json.dumps(event) + "\\n")


@hookimpl
def autoresearch_sessionstart(session):
    record("sessionstart", session.tag)


@hookimpl
def autoresearch_experiment_progress(experiment, elapsed, line, loss):
    record("progress", experiment.name, round(elapsed, 1), line, loss)


@hookimpl
def autoresearch_experiment_logreport(report):
    record("logreport", report.name, report.status)
'''


def test_entry_point_plugin_is_loaded_and_can_be_blocked(repo, tmp_path):
    site = tmp_path / "site"
    write(site / "recorder_plugin.py", RECORDER)
    dist = site / "recorder_plugin-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: recorder-plugin\nVersion: 1.0\n")
    write(dist / "entry_points.txt", "[autoresearch]\nrecorder = recorder_plugin\n")
    simple(repo, "a", "LR = 0.02")
    out = tmp_path / "events.jsonl"
    env = {"PYTHONPATH": str(site), "RECORD_TO": str(out)}
    r = run_subprocess(repo, "run", "--tag", "t1", env=env)
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert events[0] == ["sessionstart", "t1"]
    assert ["logreport", "a", "keep"] in events
    out.unlink()
    r = run_subprocess(repo, "run", "--tag", "t2", "-p", "no:recorder", env=env)
    assert r.returncode == 0 and not out.exists()


def held_until(path, text: str) -> str:
    """Workload code: wait (up to 5 minutes) until the file `path` holds `text`: a run that
    trains until the runner has sampled it, however slow a loaded machine makes the runner. The
    sandbox shows the run its data folders (XDG_CACHE_HOME here: the file's folder), read-only."""
    return (f'_deadline = time.time() + 300\n'
            f'while SLEEP and time.time() < _deadline and {text!r} not in '
            f'(open({str(path)!r}).read() if os.path.exists({str(path)!r}) else ""):\n'
            f'    time.sleep(0.05)\n')


def test_dash_p_loads_a_module_and_progress_is_followed(repo, tmp_path):
    write(tmp_path / "site" / "myplugin.py", RECORDER)
    out = tmp_path / "shown" / "events.jsonl"
    out.parent.mkdir()
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        "time.sleep(SLEEP)", 'print("step 00001 (1.0%) | loss 3.250000 | remaining 9s", flush=True)\ntime.sleep(SLEEP)\n'
        + held_until(out, '["progress", "a", ')))  # a trains on until its progress was seen
    git(repo, "commit", "-qam", "early progress line")
    simple(repo, "a", "SLEEP = 1.6")
    r = run_subprocess(repo, "run", "--tag", "t1", "-p", "myplugin",
                       env={"PYTHONPATH": str(tmp_path / "site"), "RECORD_TO": str(out), "XDG_CACHE_HOME": str(out.parent)})
    assert r.returncode == 0, r.stderr
    progress = [e for e in map(json.loads, out.read_text().splitlines()) if e[0] == "progress" and e[1] == "a"]
    assert progress, "the progress hook was never called while the workload trained"
    assert progress[-1][3] == "step 00001 (1.0%) | loss 3.250000 | remaining 9s" and progress[-1][4] == 3.25
    assert [e[2] for e in progress] == sorted(e[2] for e in progress)
    r = run_subprocess(repo, "run", "--tag", "t2", "-p", "nosuchplugin")
    assert r.returncode == 4 and "-p nosuchplugin: cannot import plugin module 'nosuchplugin'" in r.stderr


def test_every_hook_is_documented_and_prefixed():
    specs = [f for name, f in inspect.getmembers(hookspec, inspect.isfunction) if hasattr(f, "autoresearch_spec")]
    assert len(specs) >= 15
    for f in specs:
        assert f.__name__.startswith("autoresearch_")
        doc = inspect.getdoc(f) or ""
        assert doc.strip(), f.__name__
        for param in inspect.signature(f).parameters:
            assert f":param {param}:" in doc, (f.__name__, param)
    firstresult = {f.__name__ for f in specs if f.autoresearch_spec.get("firstresult")}
    assert firstresult == {"autoresearch_collect_file", "autoresearch_runloop", "autoresearch_queue_empty",
                           "autoresearch_dispatch_hold", "autoresearch_experiment_measure", "autoresearch_experiment_decide",
                           "autoresearch_experiment_run",
                           "autoresearch_experiment_rerun", "autoresearch_make_verdict", "autoresearch_make_report"}
    for name in firstresult:
        assert "Stops at first non-None result." in inspect.getdoc(getattr(hookspec, name))


def test_terminal_prints_plain_progress_lines_when_not_a_tty(repo, cli, monkeypatch):
    import autoresearch.plugins.terminal as terminal

    monkeypatch.setattr(terminal, "PLAIN_EVERY", 0.4)
    seen = repo.parent / "shown" / "progress-seen"
    seen.parent.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(seen.parent))
    write(repo.parent / "site" / "seen.py", f'''
        from pathlib import Path
        from autoresearch import hookimpl

        @hookimpl(trylast=True)  # after the terminal's: its line is printed when this one is called
        def autoresearch_experiment_progress(experiment, elapsed, line, loss):
            if experiment.name == "a" and elapsed >= 0.5:
                Path({str(seen)!r}).write_text("seen")
        ''')
    monkeypatch.syspath_prepend(str(repo.parent / "site"))
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        "time.sleep(SLEEP)", "time.sleep(SLEEP)\n" + held_until(seen, "seen")))  # a runs until a line was due
    git(repo, "commit", "-qam", "a trains until its progress was sampled")
    simple(repo, "a", "SLEEP = 1.2")
    r = cli("run", "--tag", "t1", "-p", "seen")
    assert "experiments/a.toml::a ... running" in r.out
    progress = [line for line in r.out.splitlines() if line.startswith("    experiments/a.toml::a ")]
    seconds = [sum(float(x or 0) * k for x, k in zip(re.fullmatch(r"(?:(\d+)m)?([\d.]+)s", line.split()[-1]).groups(), (60, 1)))
               for line in progress]  # 1.2s, or 1m05s on a loaded machine
    assert progress and all(x >= 0.4 for x in seconds), progress
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "discard"]
