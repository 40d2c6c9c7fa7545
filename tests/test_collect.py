"""Collection: files and folders, both formats, sweeps, -k, and every collection error's message.

Each error is one line ``path:line: what is wrong (what is allowed)`` and nothing runs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, hyp, simple, write


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
                             "hypothesis, set, replace, diff, keys, args, overrides, expect, baseline, sweep, tags, file, allow_type_change, allow_new)")


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


# -------------------------------------------------------------------------------------------
# Hypothesis files as editors and people write them: byte-order marks, names in any script,
# slow imports, and the line of what is wrong wherever the file is


def test_a_byte_order_mark_is_read_past(repo, cli):
    (repo / "experiments" / "bom.toml").write_bytes(
        b'\xef\xbb\xbfdescription = "bom"\nhypothesis = "an editor wrote a BOM"\n[set]\nLR = 0.02\n')
    (repo / "experiments" / "bom_py.py").write_bytes(b"\xef\xbb\xbf" + (
        b'from autoresearch import hypothesis\n\n@hypothesis(description="bom")\n'
        b'def bom_py(patch):\n    """Also in Python."""\n    patch.set(LR=0.04)\n'))
    r = collect_only(cli)
    assert r.rc == 0 and "experiments/bom.toml::bom" in r.out and "experiments/bom_py.py::bom_py" in r.out, r
    (repo / "experiments" / "twice.toml").write_bytes(b'description = "x"\n\xef\xbb\xbfhypothesis = "y"\n')
    assert error_of(cli) == ("ERROR experiments/twice.toml:2: invalid TOML: a byte-order mark (U+FEFF) in the middle "
                             "of the file (only its very start may hold one; delete it)")


def test_names_in_any_script_and_file_names_with_dots(repo, cli):
    simple(repo, "lr0.02", "LR = 0.02")  # the file's stem names it
    hyp(repo, "u", 'name = "lernrate_ö"\ndescription = "ö"\nhypothesis = "y"\n[set]\nLR = 0.04\n')
    hyp(repo, "after", 'description = "a"\nhypothesis = "y"\nbaseline = "lr0.02"\n[set]\nDEPTH = 3\n')
    r = collect_only(cli)
    assert r.rc == 0, r
    assert "experiments/lr0.02.toml::lr0.02" in r.out and "experiments/u.toml::lernrate_ö" in r.out
    hyp(repo, "bad", 'name = "lr!"\ndescription = "x"\nhypothesis = "y"\n')
    assert error_of(cli) == ("ERROR experiments/bad.toml:1: name 'lr!' is not valid: a character that is not a letter, "
                             "digit, '_', '-' or '.' (1 to 100 letters, digits, '_', '-' and '.', at least one letter "
                             "or digit)")
    hyp(repo, "bad", 'name = "caf\u0065\u0301"\ndescription = "x"\nhypothesis = "y"\n')
    assert "not in composed form (NFC" in error_of(cli)


def test_a_python_file_that_never_finishes_is_one_line_after_collect_timeout(repo, cli):
    import signal
    import time

    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "collect_timeout = 0.5\n")
    write(repo / "experiments" / "slow.py", '''
        from autoresearch import hypothesis

        n = 0
        while True:
            n += 1


        @hypothesis(description="never reached")
        def later(patch):
            """Why."""
    ''')
    began = time.monotonic()
    err = error_of(cli)  # the line of the loop: its test or its body, wherever the time ran out
    assert err in (f"ERROR experiments/slow.py:{line}: still running after 0.5 s (collect_timeout): a hypothesis file "
                   "should only define functions; move slow work into the workload" for line in (5, 6)), err
    write(repo / "experiments" / "slow.py", '''
        from autoresearch import hypothesis

        @hypothesis(description="x")
        def forever(patch):
            """Never returns."""
            import time
            time.sleep(3600)
    ''')
    assert error_of(cli).startswith("ERROR experiments/slow.py:8: still running after 0.5 s (collect_timeout)")
    assert time.monotonic() - began < 20
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text().replace("0.5", "inf"))
    r = collect_only(cli)
    assert r.rc == 4 and "collect_timeout = inf must be a finite number" in r.err, r


def test_a_python_file_without_sigalrm_handling_still_collects(repo, cli):
    """A SIGALRM handler of someone else's (or none available): no time limit, nothing broken."""
    import signal

    write(repo / "experiments" / "ok.py", '''
        from autoresearch import hypothesis

        @hypothesis(description="x")
        def fine(patch):
            """Why."""
            patch.set(LR=0.02)
    ''')
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(a))
    try:
        assert collect_only(cli).rc == 0
        assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL  # theirs, left in place
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not fired


CLASS = '''
from autoresearch import hypothesis


def noop(x):
    return x


@noop
@hypothesis(description="a class")
class Lr:
    """Not a function."""
'''


@pytest.mark.parametrize("where", ["experiments", "outside"])
def test_errors_name_the_line_of_the_decorated_class_inside_the_repository_or_out(repo, cli, where):
    folder = repo / "experiments" if where == "experiments" else repo.parent / "elsewhere"
    write(folder / "cls.py", CLASS)
    write(folder / "raises.py", 'from autoresearch import hypothesis\n\n\ndef helper():\n    raise ValueError("no")\n'
                                '\n\n@hypothesis\ndef f(patch):\n    """d"""\n\n\nhelper()\n')
    shown = "experiments" if where == "experiments" else str(folder)
    err = collect_only(cli, str(folder)).err
    assert f"ERROR {shown}/cls.py:10: @hypothesis decorates a class" in err, err
    assert f"ERROR {shown}/raises.py:5: raised ValueError on import: no" in err, err


def test_an_import_of_a_module_with_a_syntax_error_names_the_import(repo, cli, monkeypatch):
    write(repo / "lib" / "helper.py", "x = (\n")
    monkeypatch.syspath_prepend(str(repo / "lib"))
    write(repo / "experiments" / "imp.py", 'from autoresearch import hypothesis\n\nimport helper\n\n\n@hypothesis\n'
                                           'def f(patch):\n    """d"""\n')
    assert error_of(cli).startswith("ERROR experiments/imp.py:3: raised SyntaxError on import: ")


APPEND_KIND = '''
from autoresearch.patches import PatchKind


class Append(PatchKind):
    """A plugin's patch kind: lines appended to the editable file."""

    name = "append"
    fields = {"append": "lines to add at the end of the editable file"}

    def parse(self, raw, fail):
        value = raw.get("append")
        if value is not None and not isinstance(value, str):
            raise fail("append must be a string of lines", "append")
        return value or None

    def from_calls(self, calls):
        return "".join(text for (text,), _ in calls)

    def apply(self, value, h, result, editable, protected):
        result.after[result.target] += value
        result.changes.append(("appended", "", value.strip()))

    def describe(self, value, result):
        return [f"append {len(value.splitlines())} line(s)"]


def autoresearch_patch_kinds():
    return [Append()]
'''


def test_a_plugin_adds_a_patch_kind_and_keys_of_other_hypotheses_stay(repo, cli):
    simple(repo, "lr", "LR = 0.02")
    before = {h.name: h.key for h in _collected(repo)}
    write(repo / "conftest.py", APPEND_KIND)
    hyp(repo, "deeper", 'description = "d"\nhypothesis = "y"\nappend = "DEPTH = 3\\n"\n')
    write(repo / "experiments" / "acts.py", '''
        from autoresearch import hypothesis

        @hypothesis(description="x")
        def shallower(patch):
            """Why."""
            patch.append("DEPTH = 2\\n")
    ''')
    r = collect_only(cli)
    assert r.rc == 0, r
    assert "experiments/deeper.toml::deeper\n    append 1 line(s)  (+1 -0 lines)" in r.out
    assert "experiments/acts.py::shallower\n    append 1 line(s)" in r.out
    after = {h.name: h for h in _collected(repo)}
    assert after["lr"].key == before["lr"]
    assert [k.name for k, _ in after["deeper"].patches] == ["append"]
    hyp(repo, "bad", 'description = "d"\nhypothesis = "y"\nappend = 3\n')
    assert error_of(cli) == "ERROR experiments/bad.toml:3: append must be a string of lines"
    (repo / "experiments" / "bad.toml").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a patch kind")
    r = cli("run", "--tag", "k", "-k", "deeper")
    assert r.rc == 0, r
    assert git(repo, "show", "refs/autoresearch/k/001-deeper:train.py").endswith("DEPTH = 3")


def _collected(repo):
    """The TOML hypotheses with the built-in kinds and, when conftest.py defines it, the Append kind."""
    import importlib.util

    from autoresearch.patches import builtin_kinds
    from autoresearch.readers import collect_toml

    kinds = builtin_kinds()
    if (repo / "conftest.py").exists():
        spec = importlib.util.spec_from_file_location("append_kind", repo / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        kinds += (module.Append(),)
    return [h for f in sorted((repo / "experiments").glob("*.toml")) for h in collect_toml(f, f.name, None, kinds)]


def test_a_plugin_kind_whose_key_is_taken_is_one_line(repo, cli):
    write(repo / "conftest.py", APPEND_KIND.replace('name = "append"', 'name = "expect"').replace(
        'fields = {"append"', 'fields = {"expect"'))
    simple(repo, "a", "LR = 0.02")
    r = collect_only(cli)
    assert r.rc == 4 and "autoresearch_patch_kinds: kind 'expect': key 'expect' is already used" in r.err, r
    assert "Traceback" not in r.err
