"""Collection: files and folders, both formats, sweeps, -k, and every collection error's message.

Each error is one line ``path:line: what is wrong (what is allowed)`` and nothing runs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import hyp, simple, write


def collect_only(cli, *args):
    return cli("run", "--collect-only", *args)


def test_both_formats_sweep_multi_and_node_ids(repo, cli):
    simple(repo, "lr_up", "LR = 0.02", 'val_bpb = "< baseline"')
    hyp(repo, "depth", '''
        description = "depth {DEPTH}"
        hypothesis = "depth matters"
        [sweep]
        DEPTH = [2, 6]
    ''')
    hyp(repo, "multi", '''
        tags = ["batch"]
        [expect]
        val_bpb = "< baseline"
        [[hypotheses]]
        name = "one"
        description = "first"
        hypothesis = "one thing"
        [hypotheses.set]
        LR = 0.03
        [[hypotheses]]
        name = "two"
        description = "second"
        hypothesis = "another thing"
        [hypotheses.set]
        ACT = "gelu"
    ''')
    write(repo / "experiments" / "acts.py", '''
        from autoresearch import hypothesis

        @hypothesis(description="sleep a bit", expect={"val_bpb": "< baseline"})
        def sleepy(patch):
            """Sleeping should not matter."""
            patch.replace("SLEEP = 0.0", "SLEEP = 0.01")

        @hypothesis(description="lr sweep", sweep={"LR": [0.02, 0.04]})
        def lrs(patch, LR):
            """Closer to 0.03 is better."""
            assert LR in (0.02, 0.04)
    ''')
    write(repo / "experiments" / "helpers.py", "import sys\nsys.exit('helpers must not be imported')\n")
    (repo / "experiments" / "journal.md").write_text("# journal\n")
    (repo / "experiments" / "lessons.md").write_text("# lessons\n")
    r = collect_only(cli)
    assert r.rc == 0, r
    ids = [line for line in r.out.splitlines() if "::" in line]
    assert ids == [
        "experiments/acts.py::sleepy", "experiments/acts.py::lrs[0.02]", "experiments/acts.py::lrs[0.04]",
        "experiments/depth.toml::depth[2]", "experiments/depth.toml::depth[6]",
        "experiments/lr_up.toml::lr_up", "experiments/multi.toml::one", "experiments/multi.toml::two",
    ]
    assert "DEPTH 4 → 6  (+1 -1 lines)" in r.out
    assert 'ACT "relu" → "gelu"' in r.out
    assert "8 hypotheses collected" in r.out
    assert not list((repo / "experiments").rglob("__pycache__"))  # the folder is left as it was


def test_sweep_description_and_keyword_selection(repo, cli):
    hyp(repo, "depth", '''
        description = "depth {DEPTH}"
        hypothesis = "depth matters"
        tags = ["arch"]
        [sweep]
        DEPTH = [2, 6]
    ''')
    simple(repo, "lr_up", "LR = 0.02")
    r = collect_only(cli, "-k", "depth and not 6")
    assert [line for line in r.out.splitlines() if "::" in line] == ["experiments/depth.toml::depth[2]"]
    r = collect_only(cli, "-k", "arch or lr_up")
    assert "3 hypotheses collected" in r.out
    r = collect_only(cli, "-k", "lr_up or depth and 6")  # 'and' binds tighter than 'or'
    assert [line for line in r.out.splitlines() if "::" in line] == [
        "experiments/depth.toml::depth[6]", "experiments/lr_up.toml::lr_up"]
    r = collect_only(cli, "-k", "(lr")
    assert r.rc == 4 and "missing ')'" in r.err


def test_single_file_argument(repo, cli):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "LR = 0.04")
    r = collect_only(cli, "experiments/b.toml")
    assert "experiments/b.toml::b" in r.out and "::a" not in r.out


def error_of(cli, *args) -> str:
    r = collect_only(cli, *args)
    assert r.rc == 4, r
    assert "nothing ran" in r.err
    return r.err.splitlines()[0]


def test_malformed_toml(repo, cli):
    hyp(repo, "bad", 'description = "x"\nhypothesis = unquoted text\n')
    assert error_of(cli).startswith("ERROR experiments/bad.toml:2: invalid TOML: ")


def test_unknown_key(repo, cli):
    hyp(repo, "bad", 'description = "x"\nhypothesis = "y"\n\nsett = 1\n')
    assert error_of(cli) == ("ERROR experiments/bad.toml:4: unknown key 'sett' (allowed: name, description, "
                             "hypothesis, set, replace, diff, expect, baseline, sweep, tags, file, allow_type_change, allow_new)")


def test_no_hypothesis_text(repo, cli):
    hyp(repo, "bad", 'description = "x"\n[set]\nLR = 0.02\n')
    assert error_of(cli) == ('ERROR experiments/bad.toml:1: no hypothesis text: say what you expect to happen '
                             'and why (hypothesis = "..."; for Python, a docstring)')


def test_set_unknown_constant_suggests(repo, cli):
    simple(repo, "bad", "LRR = 0.02")
    assert error_of(cli) == ("ERROR experiments/bad.toml:4: set.LRR: train.py has no module-level constant "
                             "LRR (did you mean LR? constants: ACT, CRASH, DEPTH, LR, SEED_NOISE, SLEEP, val; "
                             "allow_new = true adds it)")


def test_set_type_change(repo, cli):
    simple(repo, "bad", 'DEPTH = "deep"')
    assert "set.DEPTH: type change from int (4) to str ('deep') (give a int, or set allow_type_change = true)" in error_of(cli)


def test_replace_not_found_and_found_twice(repo, cli):
    hyp(repo, "none", 'description = "x"\nhypothesis = "y"\n[[replace]]\nold = "NOPE = 1"\nnew = ""\n')
    hyp(repo, "twice", 'description = "x"\nhypothesis = "y"\nname = "twice"\n[[replace]]\nold = "if CRASH"\nnew = "if 0"\n')
    r = collect_only(cli)
    assert r.rc == 4
    lines = r.err.splitlines()
    assert lines[0] == ("ERROR experiments/none.toml:1: replace: text not found in train.py: 'NOPE = 1' "
                        "(give text that occurs exactly once)")
    assert lines[1].startswith("ERROR experiments/twice.toml:1: replace: text found 5 times in train.py: 'if CRASH'")
    assert lines[2] == "2 errors during collection: nothing ran"


DIFF = '''
--- a/{path}
+++ b/{path}
@@ -1,2 +1,2 @@
-LR = 0.01
+LR = 0.02
 DEPTH = 4
'''


@pytest.mark.parametrize("path, body, message", [
    ("train.py", "-LR = 0.5\n+LR = 0.02\n DEPTH = 4\n", "diff does not apply: error: patch failed: train.py:1"),
    ("prepare.py", None, "diff: touches protected file prepare.py (protected: prepare.py, pyproject.toml, uv.lock)"),
    ("../elsewhere.py", None, "diff: ../elsewhere.py is outside the repository (only train.py may change)"),
])
def test_diff_errors(repo, cli, path, body, message):
    diff = DIFF.format(path=path)
    if body:
        diff = f"\n--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n{body}"
    hyp(repo, "bad", f"description = \"x\"\nhypothesis = \"y\"\ndiff = '''{diff}'''\n")
    assert error_of(cli).startswith(f"ERROR experiments/bad.toml:1: {message}")


def test_expectation_that_does_not_parse(repo, cli):
    simple(repo, "bad", "LR = 0.02", 'val_bpb = "lower please"')
    err = error_of(cli)
    assert err.startswith("ERROR experiments/bad.toml:6: expect.val_bpb: 'lower please' does not start with a comparison")
    assert '"< baseline - 0.001"' in err


def test_duplicate_names(repo, cli):
    simple(repo, "lr", "LR = 0.02")
    hyp(repo, "other", 'name = "lr"\ndescription = "x"\nhypothesis = "y"\n[set]\nLR = 0.04\n')
    assert error_of(cli) == ("ERROR experiments/other.toml:1: duplicate name 'lr', first defined at "
                             "experiments/lr.toml:1 (names must be unique)")


def test_python_file_raising_on_import(repo, cli):
    write(repo / "experiments" / "boom.py", '''
        from autoresearch import hypothesis
        import os
        raise RuntimeError("no GPU here")

        @hypothesis(description="never reached")
        def unreachable(patch):
            """Why."""
    ''')
    assert error_of(cli) == "ERROR experiments/boom.py:4: raised RuntimeError on import: no GPU here"


def test_python_function_raising(repo, cli):
    write(repo / "experiments" / "fn.py", '''
        from autoresearch import hypothesis

        @hypothesis(description="x")
        def broken(patch):
            """Why."""
            patch.set(LR=1 / 0)
    ''')
    assert error_of(cli) == "ERROR experiments/fn.py:4: broken() raised ZeroDivisionError: division by zero"


def test_python_hypotheses_can_be_turned_off(repo, cli):
    write(repo / "experiments" / "ok.py", '''
        from autoresearch import hypothesis

        @hypothesis(description="x")
        def fine(patch):
            """Why."""
    ''')
    assert "1 hypothesis collected" in collect_only(cli).out
    err = error_of(cli, "--no-python-hypotheses")
    assert err == ("ERROR experiments/ok.py:1: Python hypothesis files are turned off (python_hypotheses = false); "
                   "write hypotheses as TOML")


def test_unknown_baseline(repo, cli):
    simple(repo, "x", "LR = 0.02")
    (repo / "experiments" / "x.toml").write_text((repo / "experiments" / "x.toml").read_text().replace(
        "[set]", 'baseline = "nosuch"\n[set]'))
    assert "baseline 'nosuch' is unknown" in error_of(cli)


def test_empty_folder_collects_nothing(repo, cli):
    r = collect_only(cli)
    assert r.rc == 5
    r = cli("run")
    assert r.rc == 5
    assert "no hypotheses collected from experiments" in r.err
    assert not (repo / ".autoresearch").exists()  # nothing written


def test_missing_path(repo, cli):
    r = collect_only(cli, "nope/")
    assert r.rc == 4 and "file or folder not found: nope" in r.err


def test_bad_settings_in_pyproject(repo, cli):
    (repo / "pyproject.toml").write_text('[tool.autoresearch]\nmetricc = "x"\n')
    r = collect_only(cli)
    assert r.rc == 4 and "[tool.autoresearch] has unknown key 'metricc'" in r.err
    (repo / "pyproject.toml").write_text('[tool.autoresearch]\ntimeout = "soon"\n')
    r = collect_only(cli)
    assert r.rc == 4 and "timeout must be a float, got 'soon'" in r.err
    (repo / "pyproject.toml").write_text('[tool.autoresearch]\ndirection = "up"\n')
    r = collect_only(cli)
    assert r.rc == 4 and "direction = 'up' is not allowed (allowed: minimize, maximize)" in r.err


def test_many_errors_all_reported(repo, cli):
    for i in range(3):
        hyp(repo, f"bad{i}", "description = \n")
    r = collect_only(cli)
    assert r.err.count("ERROR experiments/bad") == 3 and "3 errors during collection" in r.err


def test_no_test_files_outside_the_patterns(repo, cli):
    (repo / "experiments" / "notes.txt").write_text("hello")
    (repo / "experiments" / "_draft.toml").write_text("not = [valid")
    sub = repo / "experiments" / ".hidden"
    sub.mkdir()
    (sub / "x.toml").write_text("not = [valid")
    assert collect_only(cli).rc == 5


def test_collection_writes_nothing(repo, cli):
    simple(repo, "a", "LR = 0.02")
    before = sorted(p.relative_to(repo) for p in repo.rglob("*") if ".git" not in p.parts)
    collect_only(cli)
    after = sorted(p.relative_to(repo) for p in repo.rglob("*") if ".git" not in p.parts)
    assert before == after
    assert Path(repo / "train.py").read_text().startswith("LR = 0.01")
