"""The path a new user takes on their own code: init, new, run, with no conftest.py and no Python.

The repository is shaped as real ones are: hyperparameters in a config file that the script
exec's, the metric printed in the script's own format (``step 60: train loss 2.5, val loss 2.6``),
an iteration budget given on the command line, and a data folder that git ignores.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from autoresearch.plugins.results_tsv import read_results
from conftest import git, simple, write

CONFIG = """\
# hyperparameters, exec'd by train.py
learning_rate = 0.05
max_iters = 400
batch_size = 4
noise = 0.05
"""

TRAIN = """\
import os, random, sys
exec(open("config.py").read())
for arg in sys.argv[1:]:  # --key=value overrides, as nanoGPT's configurator does
    key, value = arg[2:].split("=", 1)
    globals()[key] = type(globals()[key])(value)
target = float(open("data/target.txt").read())  # the data folder is git-ignored
rng = random.Random(int(os.environ.get("AUTORESEARCH_SEED", "0")))
w = 0.0
for it in range(1, max_iters + 1):
    grad = 2 * (w - target) + rng.gauss(0, noise)
    w -= learning_rate * grad
    if it % 10 == 0 or it == max_iters:
        loss = (w - target) ** 2
        print(f"step {it}: train loss {loss:.6f}, val loss {loss + 0.001 + rng.gauss(0, 1e-5):.6f}", flush=True)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "mytrainer"
    root.mkdir()
    write(root / "config.py", CONFIG)
    write(root / "train.py", TRAIN)
    write(root / ".gitignore", "data/\n")
    write(root / "data" / "target.txt", "3.0\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "new@example.com")
    git(root, "config", "user.name", "New User")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "my trainer")
    monkeypatch.chdir(root)
    return root


def configure(project: Path, settings: str) -> None:
    """The project's [tool.autoresearch] table is `settings`, committed."""
    (project / "pyproject.toml").write_text("[tool.autoresearch]\n" + settings)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "settings")


def test_init_then_new_then_run_on_someone_elses_code(project, cli):
    root = project
    r = cli("init")
    assert r.rc == 0, r
    table = (root / "pyproject.toml").read_text()
    assert 'editable = ["config.py"]' in table and 'link = ["data"]' in table
    assert 'command = ["{python}", "train.py", "--max_iters={budget_steps}"]' in table and "TODO" in table
    assert "budget_steps = 400" in table and 'protected = ["pyproject.toml"]' in table
    assert (root / "program.md").read_text().startswith("# program.md")
    assert (root / "experiments" / "example.toml").is_file()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "autoresearch init")

    r = cli("run", "--collect-only")  # the TODO is refused before anything runs
    assert r.rc == 4 and "metric is still a TODO" in r.err, r

    # what the user edits: the metric, its line format, and the iteration budget
    table = table.replace('metric = "TODO: the name of the metric your script prints, e.g. val_loss"',
                          'metric = "val_loss"')
    table = table.replace("# metric_pattern = ", "metric_pattern = ")
    table = table.replace("budget_steps = 400", "budget_steps = 40\nrepeats = 2\nmax_repeats = 2")
    (root / "pyproject.toml").write_text(table)
    (root / "experiments" / "example.toml").unlink()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the metric and the budget")

    assert cli("new", "higher learning rate", "--set", "learning_rate=0.2",
               "--hypothesis", "A larger step converges faster in 40 iterations.").rc == 0
    assert cli("new", "more noise", "--set", "noise=2.0",
               "--hypothesis", "Noisier gradients should hurt.").rc == 0
    r = cli("run", "--tag", "first")
    assert r.rc == 0, r
    rows = read_results(root / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("higher learning rate", "keep"), ("more noise", "discard")]
    assert list(rows[0])[1] == "val_loss"  # results.tsv's second column is named after the metric
    entries = [json.loads(x) for x in (root / ".autoresearch/runs/first/results.jsonl").read_text().splitlines()]
    # the budget reached the workload: 40 iterations, the last step printed is 40
    log = (root / entries[0]["runs"][0]["log_path"]).read_text() if not Path(entries[0]["runs"][0]["log_path"]).is_absolute() \
        else Path(entries[0]["runs"][0]["log_path"]).read_text()
    assert "step 40:" in log and "step 50:" not in log
    assert entries[1]["mean"] < entries[0]["mean"]
    assert not (root / "conftest.py").exists()


def test_command_placeholders(project, cli):
    write(project / "show.py", "import sys, os\nprint('args', sys.argv[1:], os.getcwd())\n"
                               "print('---')\nprint('val_loss: 1.0')\n")
    configure(project, 'editable = ["config.py"]\nlink = ["data"]\nrepeats = 1\n'
                       'command = ["{python}", "show.py", "--b={budget}", "--s={budget_steps}", "--seed={seed}", "--w={workdir}"]\n'
                       'metric = "val_loss"\nbudget = 30\nbudget_steps = 7\n')
    simple(project, "a", "learning_rate = 0.1")
    assert cli("run", "--tag", "t1").rc == 0
    log = (project / ".autoresearch/runs/t1/logs/000-baseline.log").read_text()
    # {workdir} is the run's own folder, outside the project, and the workload ran in it
    m = re.search(r"args \['--b=30', '--s=7', '--seed=0', '--w=(?P<work>[^']+)'\] (?P<cwd>\S+)\n", log)
    assert m and m["work"] == m["cwd"] and not m["work"].startswith(str(project)), log
    assert not os.path.exists(m["work"])  # removed once the run was over
    configure(project, 'editable = ["config.py"]\ncommand = ["{python}", "show.py", "--s={budget_steps}"]\n')
    r = cli("run", "--tag", "t2")
    assert r.rc == 4 and "{budget_steps}" in r.err and "budget_steps is not set" in r.err, r


def test_a_missing_ignored_file_gets_a_hint_naming_link(project, cli):
    configure(project, 'editable = ["config.py"]\nrepeats = 1\nmetric = "val_loss"\n'
                       'command = ["{python}", "train.py"]\n' "metric_pattern = 'val loss (?P<value>[-+0-9.eE]+)'\n")
    simple(project, "a", "learning_rate = 0.1")
    r = cli("run", "--tag", "t1")
    assert r.rc == 1, r  # the baseline crashed: the run stops
    assert "data/target.txt" in r.out and "link = [" in r.out, r


def test_collection_warns_about_dead_and_empty_patches(project, cli):
    configure(project, 'editable = ["config.py"]\nprotected = ["prepare.py"]\n'
                       'command = ["{python}", "train.py", "--max_iters=20"]\nmetric = "val_loss"\n'
                       "metric_pattern = 'val loss (?P<value>[-+0-9.eE]+)'\n")
    simple(project, "same", "learning_rate = 0.05")
    simple(project, "dead", "max_iters = 100")
    r = cli("run", "--collect-only")
    assert r.rc == 0, r
    assert "experiments/same.toml:4: warning: set.learning_rate = 0.05 changes nothing" in r.err
    assert ("experiments/dead.toml:4: warning: set.max_iters: the command also passes --max_iters=20, "
            "which wins") in r.err
    assert "warning: protected file prepare.py does not exist" in r.err


def test_no_metric_says_what_would_fix_it(project, cli):
    configure(project, 'editable = ["config.py"]\nrepeats = 1\nmetric = "val_loss"\nlink = ["data"]\n'
                       'command = ["{python}", "train.py"]\n')
    simple(project, "a", "learning_rate = 0.1")
    r = cli("run", "--tag", "t1")
    assert r.rc == 1, r
    assert "printed no val_loss" in r.out and "metric_pattern" in r.out, r


def test_init_never_overwrites(project, cli):
    (project / "program.md").write_text("mine\n")
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert cli("init").rc == 0
    assert (project / "program.md").read_text() == "mine\n"
    text = (project / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "x"\n') and "[tool.autoresearch]" in text
    assert cli("init").rc == 0  # a second time: nothing appended again
    assert (project / "pyproject.toml").read_text() == text


def test_status_and_report_as_json_and_the_running_experiment(repo, cli):
    from conftest import spawn

    simple(repo, "slow", "SLEEP = 4.0")
    with spawn(repo, "run", "--tag", "t1", "--repeats", "1") as proc:
        deadline = time.monotonic() + 30
        data = None
        while time.monotonic() < deadline:
            r = cli("status", "--json")
            if r.rc == 0:
                data = json.loads(r.out)
                if any(x["nodeid"] == "experiments/slow.toml::slow" for x in data["running"]):
                    break  # (the baseline may be seen running first, on a loaded machine)
            time.sleep(0.2)
        assert data and data["runner"]["alive"] and data["runner"]["pid"] == proc.pid, data
        assert data["running"][0]["nodeid"] == "experiments/slow.toml::slow" and data["running"][0]["elapsed_s"] >= 0
        text = cli("status").out
        assert f"runner alive (pid {proc.pid}" in text and "running: #1 experiments/slow.toml::slow for" in text
        proc.communicate(timeout=60)
    data = json.loads(cli("status", "--json").out)
    assert not data["runner"]["alive"] and data["running"] == []
    assert [(e["nodeid"], e["status"]) for e in data["experiments"]] == [
        ("baseline", "keep"), ("experiments/slow.toml::slow", "discard")]
    report = json.loads(cli("report", "--json").out)
    assert [e["status"] for e in report["experiments"]] == ["keep", "discard"] and report["metric"] == "val_bpb"
    assert "no runner at work" in cli("status").out


def test_set_keeps_the_written_form_and_allow_new_adds_a_constant(repo, cli):
    (repo / "train.py").write_text("LR = 6e-4\n" + (repo / "train.py").read_text().split("\n", 1)[1])
    git(repo, "commit", "-qam", "an exponent")
    simple(repo, "a", "LR = 0.001")
    write(repo / "experiments" / "b.toml", 'description = "b"\nhypothesis = "y"\nallow_new = true\n[set]\nWARMUP = 10\n')
    r = cli("run", "--collect-only")
    assert r.rc == 0 and "LR 6e-4 → 1e-3" in r.out and "WARMUP (new) → 10" in r.out, r
    (repo / "experiments" / "b.toml").write_text('description = "b"\nhypothesis = "y"\n[set]\nWARMUP = 10\n')
    r = cli("run", "--collect-only")
    assert r.rc == 4 and "experiments/b.toml:4: set.WARMUP" in r.err and "allow_new = true adds it" in r.err, r


def test_new_accepts_what_people_type(repo, cli):
    r = cli("new", "no clip", "--set", "ACT=None", "--expect", "val_bpb<baseline", "--name", "a")
    assert r.rc == 4 and "type change from str" in r.err  # None is a Python literal, read as such
    assert cli("new", "relu", "--set", "ACT=relu", "--expect", "val_bpb<baseline", "--name", "b").rc == 0
    text = (repo / "experiments" / "b.toml").read_text()
    assert 'val_bpb = "<baseline"' in text and 'ACT = "relu"' in text
    r = cli("run", "--collect-only")
    assert r.rc == 0 and "warning: set.ACT = \"relu\" changes nothing" in r.err, r


def test_report_escapes_pipes_and_counts_cpu_hours(repo, cli):
    import shutil

    simple(repo, "a", "LR = 0.02", description="lr | higher")
    assert cli("run", "--tag", "t1", "--repeats", "1").rc == 0
    text = cli("report").out
    assert "| 1 | lr \\| higher |" in text
    unit = "GPU" if shutil.which("nvidia-smi") else "CPU"
    assert f"| experiments | status | {unit}-hours | cost |" in text


def test_targets_a_keep_must_meet_and_the_iteration_table(repo, cli):
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text()
                                         + 'repeats = 1\n[tool.autoresearch.targets]\npeak_vram_mb = "<= 4096"\n')
    git(repo, "commit", "-qam", "a memory target")
    simple(repo, "a_deeper", "DEPTH = 6")  # better val_bpb? no: deeper is worse here; and misses the target
    simple(repo, "b_lr", "LR = 0.02")  # better, memory unchanged: kept
    simple(repo, "c_lr_deep", "LR = 0.03\nDEPTH = 5")  # best val_bpb of all, but 5120 MB: misses the target
    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("a_deeper", "discard"), ("b_lr", "keep"), ("c_lr_deep", "discard")]
    entries = [json.loads(x) for x in (repo / ".autoresearch/runs/t1/results.jsonl").read_text().splitlines()]
    assert "misses its target: peak_vram_mb 5120 not <= 4096" in entries[3]["reason"], entries[3]["reason"]
    text = cli("report").out
    assert "## Summary of iterations" in text  # seed 002's table: every iteration, the reverted ones too
    assert "| metric | baseline | #1 a_deeper (reverted) | #2 b_lr | #3 c_lr_deep (reverted) | target |" in text
    assert "| peak_vram_mb | 4096 | 6144 ↑↑ | 4096 | 5120 ↑ | <= 4096 |" in text
    assert "| val_bpb | 1.22 | 1.24 ↑ | 1.12 ↓ | 1.03 ↓ | — |" in text


def test_a_link_that_does_not_exist_is_refused_before_anything_is_written(project, cli):
    import shutil

    configure(project, 'editable = ["config.py"]\nrepeats = 1\nmetric = "val_loss"\nlink = ["data"]\n'
                       'command = ["{python}", "train.py"]\n' "metric_pattern = 'val loss (?P<value>[-+0-9.eE]+)'\n")
    shutil.rmtree(project / "data")
    simple(project, "a", "learning_rate = 0.1")
    r = cli("run", "--tag", "t1")
    assert r.rc == 4 and "link: data does not exist" in r.err and "create it first" in r.err, r
    assert not (project / ".autoresearch").exists() and "autoresearch/t1" not in git(project, "branch")
    assert "nothing ran" not in r.out
