"""The trunk: the session wrapper, the run loop and the experiment protocol as hooks, one store.

Each test pins one promise of the skeleton: a plugin can change how experiments run without a
change to the core; the ledger is the record everything renders from; a crash's cause is data;
every way a command ends has its exit code, and none is a traceback.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch.plugins.results_tsv import read_results
from autoresearch.reports import ExitCode
from conftest import ROOT, git, hyp, run_subprocess, simple, spawn, write
from test_session import run_dir

# Repeats are a plugin: this whole file is the feature, and the core does not change for it.
RUN_TWICE = '''\
"""Run every experiment twice, with seeds 0 and 1; its value is then the mean of the two."""
from autoresearch import hookimpl


@hookimpl
def autoresearch_experiment_rerun(experiment, runs):
    return len(runs) < 2
'''


def ledger(repo: Path, tag: str = "t1") -> list[dict]:
    return [json.loads(x) for x in (run_dir(repo, tag) / "ledger.jsonl").read_text().splitlines()]


def sidecar(repo: Path, tag: str = "t1") -> list[dict]:
    return [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_a_short_plugin_runs_every_hypothesis_twice_and_keeps_the_mean(repo, cli):
    assert len(RUN_TWICE.splitlines()) <= 30
    write(repo / "conftest.py", RUN_TWICE)
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.01"))
    commit_all(repo, "a workload whose value moves with the seed")
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    rows = read_results(repo / "results.tsv")
    # seed 0 and seed 1 give 1.22 and 1.23 for the baseline, 1.12 and 1.13 for a: the mean is kept
    assert [(x["description"], x["val_bpb"], x["status"]) for x in rows] == [
        ("baseline", "1.225000", "keep"), ("a", "1.125000", "keep")]
    entries = sidecar(repo)
    assert [[r["seed"] for r in e["runs"]] for e in entries] == [[0, 1], [0, 1]]
    assert [[r["metrics"]["val_bpb"] for r in e["runs"]] for e in entries][1] == [1.12, 1.13]
    logs = sorted(p.name for p in (run_dir(repo) / "logs").iterdir())
    assert logs == ["000-baseline.1.log", "000-baseline.log", "001-a.1.log", "001-a.log"]


def test_a_tryfirst_verdict_replaces_the_whole_rule_the_tip_rule_included(repo, cli):
    write(repo / "conftest.py", '''
        from autoresearch import Verdict, hookimpl

        @hookimpl(tryfirst=True)
        def autoresearch_make_verdict(experiment, metrics, tip):
            return Verdict("keep", f"keep: this lab keeps everything (tip at {tip.mean('val_bpb')})")
    ''')
    commit_all(repo, "keep everything")
    simple(repo, "a", "LR = 0.02")  # 1.12
    # built on the initial commit and worse than the tip (1.21 > 1.12): the built-in rule would
    # discard it; the user's rule keeps it, and the branch moves to it
    hyp(repo, "b", 'description = "from initial"\nhypothesis = "x"\nbaseline = "initial"\n[set]\nDEPTH = 3\n')
    assert cli("run", "--tag", "t1").rc == 0
    rows = read_results(repo / "results.tsv")
    assert [x["status"] for x in rows] == ["keep", "keep", "keep"]
    assert sidecar(repo)[2]["reason"] == "keep: this lab keeps everything (tip at 1.12)"
    assert git(repo, "rev-parse", "--short=7", "autoresearch/t1") == rows[2]["commit"]


def test_the_run_loop_can_be_replaced(repo, cli):
    write(repo / "conftest.py", '''
        from autoresearch import hookimpl
        from autoresearch.loop import run_baseline
        from autoresearch.protocol import runprotocol

        @hookimpl(tryfirst=True)
        def autoresearch_runloop(session):
            """Newest idea first: the hypotheses in reverse order."""
            if run_baseline(session):
                for h in reversed(list(session.queue())):
                    runprotocol(session.experiment(h))
            return True
    ''')
    commit_all(repo, "reverse loop")
    for name, depth in (("a", 3), ("b", 5), ("c", 6)):
        simple(repo, name, f"DEPTH = {depth}")
    assert cli("run", "--tag", "t1").rc == 0
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "c", "b", "a"]
    assert [e["report"]["seq"] for e in ledger(repo) if e["event"] == "done"] == [0, 1, 2, 3]


def test_every_output_renders_from_the_ledger(repo, cli):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", 'CRASH = "exit"')
    assert cli("run", "--tag", "t1", "--junitxml", "junit.xml").rc == 0
    done = [e["report"] for e in ledger(repo) if e["event"] == "done"]
    assert [e["seq"] for e in sidecar(repo)] == [r["seq"] for r in done]
    # remove every rendering: a resume that runs nothing new writes them all again, the same
    tsv = (repo / "results.tsv").read_text()
    for path in (repo / "results.tsv", run_dir(repo) / "results.tsv", run_dir(repo) / "results.jsonl"):
        path.unlink()
    assert cli("run", "--resume", "--junitxml", "junit2.xml").rc == 0
    assert (repo / "results.tsv").read_text() == tsv == (run_dir(repo) / "results.tsv").read_text()
    assert [e["seq"] for e in sidecar(repo)] == [0, 1, 2]
    assert (repo / "junit2.xml").read_text().count("<testcase") == 3
    assert "3 experiments, 2 keep, 1 crash" in cli("status").out


@pytest.mark.parametrize("crash, cause", [
    ('"exit"', "exit-code"), ('"nan"', "nan"), ('"oom"', "out-of-memory"), ('"nosummary"', "no-metric"),
    ('"hang"', "timeout"), ('"selfkill"', "killed"),
])
def test_a_crash_cause_is_data(repo, cli, crash, cause):
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'if CRASH == "hang":', 'if CRASH == "selfkill":\n    os.kill(os.getpid(), 9)\nif CRASH == "hang":'))
    commit_all(repo, "selfkill")
    simple(repo, "a", f"CRASH = {crash}")
    assert cli("run", "--tag", "t1", "--timeout", "1.5").rc == 0
    entry = sidecar(repo)[1]
    assert entry["status"] == "crash" and entry["cause"] == cause and entry["runs"][0]["cause"] == cause
    assert entry["root_cause"]  # and in words, for people


def test_a_baseline_that_cannot_be_built_on_is_a_patch_failed_crash(repo, cli):
    simple(repo, "a", 'CRASH = "exit"')
    hyp(repo, "b", 'description = "on a"\nhypothesis = "x"\nbaseline = "a"\n[set]\nDEPTH = 3\n')
    assert cli("run", "--tag", "t1").rc == 0
    entry = sidecar(repo)[2]
    assert entry["status"] == "crash" and entry["cause"] == "patch-failed" and entry["runs"][0]["log_path"] == ""
    assert entry["root_cause"].startswith("its baseline 'a' crashed (ValueError: synthetic failure)")


def test_one_slug_names_the_log_and_the_ref(repo, cli):
    hyp(repo, "lr", 'description = "LR {LR}"\nhypothesis = "x"\n[sweep]\nLR = [0.02]\n')
    assert cli("run", "--tag", "t1").rc == 0
    (log,) = [p.stem for p in (run_dir(repo) / "logs").glob("001-*.log")]
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/autoresearch/t1").splitlines()
    assert log == "001-lr-0-02" and refs == [f"refs/autoresearch/t1/{log}"]


def test_a_git_failure_mid_run_is_a_stop_with_gits_words_not_a_usage_error(repo, cli):
    write(repo / "conftest.py", '''
        from pathlib import Path
        from autoresearch import hookimpl

        @hookimpl(tryfirst=True)
        def autoresearch_experiment_setup(experiment):
            if experiment.name == "b":  # another process holds the ref git must write
                lock = Path(".git/refs/autoresearch/t1/002-b.lock")
                lock.parent.mkdir(parents=True, exist_ok=True)
                lock.write_text("")
    ''')
    commit_all(repo, "a lock appears")
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "DEPTH = 3")
    r = cli("run", "--tag", "t1")
    assert r.rc == ExitCode.STOPPED, r
    assert "autoresearch: error: git update-ref refs/autoresearch/t1/002-b" in r.err
    assert "002-b.lock" in r.err and "runs again: fix this, then continue with --resume" in r.err
    assert "Traceback" not in r.err
    (repo / ".git/refs/autoresearch/t1/002-b.lock").unlink()
    (repo / "conftest.py").unlink()
    commit_all(repo, "lock gone")
    r = cli("run", "--resume")  # conftest.py is pinned for the run: a change is refused unless meant
    assert r.rc == 4 and "conftest.py changed since the run started" in r.err and "--accept-changes" in r.err, r
    r = cli("run", "--resume", "--accept-changes")
    assert r.rc == 0, r
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a", "b"]


@pytest.mark.parametrize("setting, message", [
    ('metric_pattern = "(unclosed"', "metric_pattern = '(unclosed': not a valid regular expression"),
    ('metric_pattern = "^val: (\\\\d+)$"', "needs the named group (?P<value>...)"),
    ("budget = -5", "budget = -5.0: must be more than 0"),
    ("timeout = 0", "timeout = 0.0: must be more than 0"),
    ("editable = []", "editable = []: give at least one file"),
    ('protected = ["train.py", "prepare.py"]', "train.py is both editable and protected"),
])
def test_an_invalid_setting_is_one_line_at_start_up(repo, cli, setting, message):
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + setting + "\n")
    commit_all(repo, "bad setting")
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1")
    assert r.rc == ExitCode.USAGE_ERROR, r
    assert message in r.err and r.err.count("\n") == 1 and r.err.startswith("autoresearch: error: ")
    assert not (repo / ".autoresearch").exists()


def test_a_negative_budget_on_the_command_line(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--budget", "-1")
    assert r.rc == 4 and "command line: budget = -1.0: must be more than 0" in r.err


def test_a_crashed_baseline_runs_again_on_resume_until_it_succeeds_then_never_again(repo):
    simple(repo, "a", "LR = 0.02")
    first = run_subprocess(repo, "run", "--tag", "t1", "--pass-env", "FAKE_FAIL", env={"FAKE_FAIL": "1"})
    assert first.returncode == ExitCode.STOPPED and "the baseline crashed (error: no prepared data" in first.stderr
    again = run_subprocess(repo, "run", "--resume", "--pass-env", "FAKE_FAIL", env={"FAKE_FAIL": "1"})  # not fixed yet: crashes again
    assert again.returncode == ExitCode.STOPPED
    fixed = run_subprocess(repo, "run", "--resume")
    assert fixed.returncode == 0, fixed.stderr
    simple(repo, "b", "DEPTH = 3")
    later = run_subprocess(repo, "run", "--resume")
    assert later.returncode == 0, later.stderr
    rows = read_results(repo / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "crash"), ("baseline", "crash"), ("baseline", "keep"), ("a", "keep"), ("b", "keep")]
    # the baseline's runs are numbered as the commit's runs: seeds 0 and 1 crashed, 2 succeeded
    assert [e["runs"][0]["seed"] for e in sidecar(repo)[:3]] == [0, 1, 2]
    assert sidecar(repo)[3]["baseline_metrics"]["val_bpb"] == 1.22


# -------------------------------------------------------------------------------------------
# A closed standard output: no traceback, a documented exit code, nothing lost


def closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone, as `cmd | head` leaves it."""
    read, write_end = os.pipe()
    os.close(read)
    return write_end


@pytest.mark.parametrize("args", [["--help"], ["status"], ["report"], ["run", "--collect-only"]])
def test_a_closed_output_is_exit_141_without_a_traceback(repo, cli, args):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    out = closed_pipe()
    try:
        r = subprocess.run([sys.executable, "-m", "autoresearch", *args], cwd=repo, stdout=out,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(out)
    assert r.returncode == ExitCode.OUTPUT_CLOSED == 141, r.stderr
    assert r.stderr == ""


def test_run_into_a_closed_output_records_nothing_twice_and_resumes(repo):
    simple(repo, "a", "LR = 0.02")
    out = closed_pipe()
    try:
        with spawn(repo, "run", "--tag", "t1", stdout=out) as proc:
            _, err = proc.communicate(timeout=60)
    finally:
        os.close(out)
    assert proc.returncode == 141 and "Traceback" not in err, err
    r = run_subprocess(repo, "run", "--resume")
    assert r.returncode == 0, r.stderr
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]


def test_output_closed_while_training_records_the_experiment_as_interrupted(repo, cli, monkeypatch):
    import autoresearch.plugins.terminal as terminal

    class Head:
        """A reader that goes away when the first progress line of experiment a arrives."""

        def __init__(self) -> None:
            self.lines: list[str] = []

        def write(self, text: str) -> int:
            if "    experiments/a.toml::a " in text:
                raise BrokenPipeError(32, "Broken pipe")
            self.lines.append(text)
            return len(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(terminal, "PLAIN_EVERY", 0.4)
    real = sys.stdout
    monkeypatch.setattr(sys, "stdout", Head())
    simple(repo, "a", "LR = 0.02\nSLEEP = 5.0")
    assert cli("run", "--tag", "t1").rc == ExitCode.OUTPUT_CLOSED
    monkeypatch.setattr(sys, "stdout", real)
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep"]
    assert sidecar(repo)[-1]["seq"] == 0
    done = [e["report"] for e in ledger(repo) if e["event"] == "done"]
    assert done[-1]["status"] == "interrupted" and done[-1]["cause"] == "interrupted"
    assert "interrupted by a closed output (| head)" in (repo / "experiments" / "journal.md").read_text()
    assert git(repo, "log", "-1", "--format=%s", "autoresearch/t1") == "init"
    simple(repo, "a", "LR = 0.02")  # faster now
    assert cli("run", "--resume").rc == 0
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]


# -------------------------------------------------------------------------------------------
# The module layout


def imports_of(path: Path) -> set[str]:
    """The autoresearch modules a file imports, at its top or inside functions (not the names an
    ``if TYPE_CHECKING:`` block imports for annotations only: they are never imported at run time)."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autoresearch."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "autoresearch":
            found |= {a.name for a in node.names if (ROOT / "autoresearch" / f"{a.name}.py").exists()
                      or (ROOT / "autoresearch" / a.name / "__init__.py").exists()}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("autoresearch.")}
    return found - {"plugins"}


def test_the_core_has_no_import_loop():
    modules = {p.stem: [p] for p in (ROOT / "autoresearch").glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name: sorted(p.parent.glob("*.py")) for p in (ROOT / "autoresearch").glob("*/__init__.py")}
    graph = {name: set().union(*map(imports_of, files)) - {name} for name, files in modules.items()}
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import loop: {' -> '.join(path + (node,))}"
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            visit(dep, path + (node,))
        state[node] = "done"

    for module in sorted(graph):
        visit(module, ())
    assert "cli" not in graph["commands"] and "main" in graph["cli"]
    for name in ("main", "loop", "protocol", "ledger", "errors"):  # the data flow, in file names
        assert (ROOT / "autoresearch" / f"{name}.py").is_file()
    assert not (ROOT / "autoresearch" / "runner.py").exists()



MODULE_LINES, FUNCTION_LINES = 350, 60
#: Product modules over MODULE_LINES that their owner is splitting (take each out when it is done).
OVER_FOR_NOW: set[str] = set()
#: How a long function's docstring gives its reason: a paragraph starting "One function" or "(Long:".
REASON = re.compile(r"(^|\n)\s*(One function\b|\(?Long:)")


def test_no_module_over_350_lines_and_no_long_function_without_a_reason():
    """Issue 20: a product module over ~350 lines is split into a new module; a function over ~60
    lines says in its docstring why it is one (a paragraph "One function, long: ...")."""
    files = sorted([*(ROOT / "autoresearch").rglob("*.py"), *(ROOT / "plugins").glob("*.py")])
    assert len(files) > 50
    long_modules, long_functions = [], []
    for path in files:
        name, text = path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MODULE_LINES and name not in OVER_FOR_NOW:
            long_modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > FUNCTION_LINES and not REASON.search(ast.get_docstring(node) or ""):
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {size} lines, no reason given")
    assert not long_modules, f"split these into a new module (at most {MODULE_LINES} lines): {long_modules}"
    assert not long_functions, (f"split these, or say why each is one function in its docstring "
                                f"(\"One function, long: ...\"): {long_functions}")
