"""``show`` and ``diff``: the morning's comparison, on real runs of the fake workload."""
from __future__ import annotations

import csv
import io
import json

from conftest import hyp, simple
from hypothesis import given, settings
from hypothesis import strategies as st

from autoresearch.reports import ExitCode

CODE = '''\
description = "add a bonus line"
hypothesis = "subtracting a bonus lowers val_bpb"
[[replace]]
old = "BONUS = 0.0\\n"
new = "BONUS = 0.0\\nBONUS += 0.05\\n"
'''


def demo(repo, cli, tag="t1"):
    """The demo's shape: a set change kept, a code change (replace) kept, a crash, a refuted discard."""
    train = repo / "train.py"
    train.write_text(train.read_text().replace("val = 1.0 +", "BONUS = 0.0\nval = 1.0 - BONUS +"))
    from conftest import git

    git(repo, "commit", "-qam", "a bonus")
    simple(repo, "a_lr", "LR = 0.02", 'val_bpb = "< baseline"', description="raise LR")
    hyp(repo, "b_code", CODE)
    simple(repo, "c_crash", 'CRASH = "exit"', description="a crash")
    simple(repo, "d_depth", "DEPTH = 6", 'val_bpb = "< baseline"', description="deeper")
    r = cli("run", "--tag", tag, "-q")
    assert r.rc == ExitCode.OK, r
    return r


def test_show_is_experiments_by_changes_by_metrics_with_status(repo, cli):
    demo(repo, cli)
    r = cli("show")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    head = lines[0].split()
    assert head[:2] == ["#", "experiment"] and head[-2:] == ["status", "expectation"]
    assert head.index("DEPTH") < head.index("LR") < head.index("code") < head.index("val_bpb")
    rows = {line.split()[1]: line for line in lines[2:-1]}
    assert set(rows) == {"baseline", "a_lr", "b_code", "c_crash", "d_depth"}
    # the kept code change: its description and line counts, its metric, kept
    assert "add a bonus line (+1 −0)" in rows["b_code"] and "1.07" in rows["b_code"]
    assert rows["b_code"].split()[-2:] == ["keep", "—"]
    assert "0.02" in rows["a_lr"] and rows["a_lr"].split()[-2:] == ["keep", "confirmed"]
    assert rows["d_depth"].split()[-2:] == ["discard", "refuted"] and " 6 " in rows["d_depth"]
    assert rows["c_crash"].split()[-2:] == ["crash", "—"] and '"exit"' in rows["c_crash"]
    assert lines[-1] == "5 experiments"


def test_show_formats_sort_and_filters(repo, cli):
    demo(repo, cli)
    data = json.loads(cli("show", "--json").out)["experiments"]
    code = next(e for e in data if e["name"] == "b_code")
    assert code["code"] == "add a bonus line (+1 −0)" and code["status"] == "keep"
    assert code["metrics"]["val_bpb"]["mean"] == 1.07 and code["metrics"]["val_bpb"]["n"] == 1
    assert next(e for e in data if e["name"] == "a_lr")["params"] == {"LR": "0.02"}
    table = list(csv.reader(io.StringIO(cli("show", "--csv", "--sort", "val_bpb").out)))
    assert table[0][:2] == ["#", "experiment"]
    assert [r[1] for r in table[1:]] == ["b_code", "d_depth", "a_lr", "baseline", "c_crash"]  # crash: no value, last
    down = list(csv.reader(io.StringIO(cli("show", "--csv", "--sort=-val_bpb").out)))
    assert [r[1] for r in down[1:]] == ["baseline", "a_lr", "d_depth", "b_code", "c_crash"]
    md = cli("show", "--md", "--status", "keep,crash").out.splitlines()
    assert md[1].startswith("|---|") and len(md) == 2 + 4  # baseline, a_lr, b_code, c_crash
    assert cli("show", "--csv", "-k", "lr or bonus").out.count("\n") == 3
    bad = cli("show", "--status", "kept")
    assert bad.rc == ExitCode.USAGE_ERROR and "--status kept: kept is not a status (give a comma-separated list of " \
        "keep, discard, crash, interrupted, pruned)" in bad.err
    bad = cli("show", "--sort", "nope")
    assert bad.rc == ExitCode.USAGE_ERROR and "--sort nope: no such column (columns: seq" in bad.err
    assert cli("show", "--md", "--csv").rc == ExitCode.USAGE_ERROR


def test_show_all_across_tags_and_an_unknown_tag_lists_the_runs(repo, cli):
    demo(repo, cli, "t1")
    simple(repo, "e_lr", "LR = 0.03", description="LR to the optimum")
    assert cli("run", "--tag", "t2", "-q", "experiments/e_lr.toml").rc == 0
    out = cli("show", "--all", "--csv").out
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "tag" and {r[0] for r in rows[1:]} == {"t1", "t2"} and len(rows) == 1 + 5 + 2
    assert "e_lr" not in cli("show", "--tag", "t1").out and "e_lr" in cli("show").out  # default: the latest
    for command in ("show", "report", "status"):
        r = cli(command, "--tag", "nosuch")
        assert r.rc == ExitCode.USAGE_ERROR, r
        assert "no run tagged 'nosuch'" in r.err and "(runs here: t1, t2)" in r.err, r


def test_diff_gives_parameters_metrics_with_the_noise_and_the_code(repo, cli):
    demo(repo, cli)
    r = cli("diff", "#0", "b_code")
    assert r.rc == 0, r
    assert r.out.startswith("A: t1 #0 baseline — baseline [")
    assert "B: t1 #2 b_code — add a bonus line [" in r.out
    assert "  LR         0.01 → 0.02" in r.out  # b_code built on the kept LR change
    val = next(line for line in r.out.splitlines() if line.strip().startswith("val_bpb"))
    assert "-0.15" in val and val.rstrip().endswith("beyond the noise, B better")  # no noise at all here
    depth = next(line for line in r.out.splitlines() if line.strip().startswith("depth"))
    assert depth.split() == ["depth", "4", "(n=3)", "4", "+0", "the", "same"]
    assert "+BONUS += 0.05" in r.out and "+LR = 0.02" in r.out and "diff --git a/train.py b/train.py" in r.out
    data = json.loads(cli("diff", "a_lr", "d_depth", "--json").out)
    assert data["parameters"] == {"DEPTH": ["4", "6"]}
    assert data["metrics"]["peak_vram_mb"]["delta"] == 2048.0
    assert "-DEPTH = 4" in data["code"] and "+DEPTH = 6" in data["code"]
    same = cli("diff", "t1", "b_code", "--no-code")  # a tag: that run's tip, its last kept experiment
    assert same.rc == 0 and "parameters: the same" in same.out and "diff --git" not in same.out
    bad = cli("diff", "zz", "1")
    assert bad.rc == ExitCode.USAGE_ERROR and "zz: no such experiment (give its number" in bad.err


def test_the_configuration_is_every_literal_constant_and_a_kind_adds_its_own():
    from autoresearch.patches import PatchKind, builtin_kinds, configuration

    texts = {"train.py": 'LR = 0.01\nDEPTH: int = 2**3\nACT = "relu"\nimport os\nHOME = os.getcwd()\n__all__ = []\n',
             "model.py": "WIDTH = 64\n", "conf.yaml": "lr: 0.1\n", "broken.py": "X = (\n"}

    class Yaml(PatchKind):
        name = "yaml"
        fields = {"yaml": "keys of conf.yaml"}

        def parameters(self, texts):
            return dict(line.split(": ", 1) for line in texts.get("conf.yaml", "").splitlines())

    assert configuration(texts) == {"LR": "0.01", "DEPTH": "2**3", "ACT": '"relu"', "model.py:WIDTH": "64"}
    assert configuration(texts, (*builtin_kinds(), Yaml()))["lr"] == "0.1"


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
                       st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                                 st.text(max_size=10), st.booleans()), max_size=8))
def test_every_constant_written_is_read_back_as_its_source(values):
    from autoresearch.patches import configuration

    source = "".join(f"{k} = {v!r}\n" for k, v in values.items()) + "print('x')\n"
    got = configuration({"train.py": source})
    assert got == {k: repr(v) for k, v in values.items()}
