"""The ``args`` and ``overrides`` patch kinds: command-line flags and Hydra overrides as data.

Property tests merge random flags into random argv of every form and parse the result with a real
argparse parser built for it; the end-to-end tests walk a makemore-like argparse script and a
nanoGPT-like exec'd-config script through init, new, --collect-only and run, with settings only.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.errors import CollectError, PatchError
from autoresearch.model import build
from autoresearch.patches import apply_patch, builtin_kinds, describe
from autoresearch.patches.argv import ARGS_FILE, merge_args, merge_overrides, merged_command, override_base
from autoresearch.patches.flags import flags
from autoresearch.plugins.results_tsv import read_results
from conftest import git, write

# ------------------------------------------------------------------------------------------------
# flag merging, every argv form, against a real argparse parser

LONG = st.from_regex(r"[a-z]{2,5}(-[a-z]{1,3})?", fullmatch=True)
SHORT = st.sampled_from(list("abcdefghijk"))
KINDS = ("str", "int", "float", "bool", "list")
WORD = st.from_regex(r"[a-z][a-z0-9_.]{0,6}", fullmatch=True)
ODD = st.one_of(WORD, st.sampled_from(["-x", "--y", "-1e-5", "a b", "a=b", "---", "", "-", "=", "{seed}"]))


def value_of(kind: str, odd: bool = False):
    if kind == "str":
        return ODD if odd else WORD
    if kind == "int":
        return st.integers(-1000, 1000)
    if kind == "float":
        return (st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False) if odd
                else st.sampled_from([-1.5, 0.25, 3.0, 2.0, -0.5]))
    if kind == "bool":
        return st.booleans()
    return st.lists(WORD, min_size=1, max_size=3)


def spelled(name: str) -> str:
    return f"-{name}" if len(name) == 1 else f"--{name}"


@st.composite
def cases(draw):
    names = draw(st.lists(st.one_of(LONG, SHORT), min_size=1, max_size=6, unique=True))
    kinds = {n: draw(st.sampled_from(KINDS)) for n in names}
    argv: list[str] = []
    for name in draw(st.lists(st.sampled_from(names), max_size=8)):  # repeated flags, in any order
        kind, flag = kinds[name], spelled(name)
        if kind == "bool":
            if draw(st.booleans()):
                argv.append(flag)
            continue
        if kind == "list":
            argv += [flag, *draw(value_of("list"))]
            continue
        value = str(draw(value_of(kind)))
        forms = ["eq", "space"] + (["attached"] if len(name) == 1 else [])
        form = draw(st.sampled_from(forms))
        argv += [f"{flag}={value}"] if form == "eq" else [flag, value] if form == "space" else [flag + value]
    rest = draw(st.lists(st.one_of(WORD, st.sampled_from(["--lr=1", "-a", "--x", "b"])), max_size=3))
    if rest or draw(st.booleans()):
        argv += ["--", *rest]
    chosen = draw(st.lists(st.sampled_from(names), unique=True))
    args = {n: draw(value_of(kinds[n], odd=True)) for n in chosen}
    return kinds, argv, args


def parser_for(kinds: dict[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for name, kind in kinds.items():
        dest = "f_" + name.replace("-", "_")
        if kind == "bool":
            p.add_argument(spelled(name), dest=dest, action="store_true")
        elif kind == "list":
            p.add_argument(spelled(name), dest=dest, nargs="+")
        else:
            p.add_argument(spelled(name), dest=dest, type={"str": str, "int": int, "float": float}[kind])
    p.add_argument("rest", nargs="*")
    return p


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_merged_flags_parse_to_exactly_the_intended_values(case):
    kinds, argv, args = case
    parser = parser_for(kinds)
    before = vars(parser.parse_args(argv))
    merged = [t for t, _ in merge_args(argv, args)]
    after = vars(parser.parse_args(merged))
    expected = dict(before)
    for name, value in args.items():
        expected["f_" + name.replace("-", "_")] = value
    assert after == expected, (argv, args, merged)
    tail = argv[argv.index("--"):] if "--" in argv else []
    assert merged[len(merged) - len(tail):] == tail  # what follows -- is never touched
    assert all(ours for t, ours in merge_args(argv, args) if t not in argv)  # only our tokens are new


def test_the_old_value_is_what_the_command_passes_else_the_scripts_default():
    (h,) = one({"args": {"learning-rate": 2e-3, "n-layer": 6, "compile": True}})
    result = apply_patch(h, {"train.py": SCRIPT}, ["train.py"], [], ["{python}", "train.py", "--n-layer", "5",
                                                                    "--compile", "--learning-rate={seed}"])
    assert result.changes == [("--learning-rate", "5e-4", "2e-3"), ("--n-layer", "5", "6"),
                              ("--compile", "true", "true")]


def test_a_flag_set_from_a_placeholder_is_left_to_the_runner():
    argv = ["{python}", "train.py", "--max-steps={budget_steps}", "--seed", "{seed}", "--lr", "1"]
    merged = merge_args(argv, {"max-steps": 5, "seed": 3, "lr": 2.0})
    assert [t for t, _ in merged] == ["{python}", "train.py", "--max-steps={budget_steps}", "--seed", "{seed}",
                                      "--lr=2.0"]


# ------------------------------------------------------------------------------------------------
# Hydra overrides

OKEY = st.from_regex(r"[a-z]{1,4}(\.[a-z]{1,3}){0,2}", fullmatch=True)


def hydra_state(tokens: list[str]) -> dict[str, str]:
    """What a Hydra command line sets, key by key (the last token of a key wins)."""
    state = {}
    for t in tokens:
        base = override_base(t)
        if base is not None:
            state[base] = "~" if t.startswith("~") else t.split("=", 1)[1]
    return state


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "+", "~"]), OKEY, st.integers(0, 9)), max_size=6),
       st.dictionaries(st.tuples(st.sampled_from(["", "+", "++", "~"]), OKEY), st.integers(0, 99), max_size=4))
def test_merged_overrides_set_exactly_the_intended_keys(own, wanted):
    argv = ["python", "app.py", "--verbose"] + [f"~{k}" if p == "~" else f"{p}{k}={v}" for p, k, v in own]
    overrides = {f"{p}{k}": (True if p == "~" else v) for (p, k), v in wanted.items()}
    bases: dict[str, str] = {}
    for key in overrides:
        bases[key.lstrip("+~")] = key
    overrides = {key: overrides[key] for key in bases.values()}  # one entry per key, as the file holds them
    merged = [t for t, _ in merge_overrides([(t, False) for t in argv], overrides)]
    state, before = hydra_state(merged), hydra_state(argv)
    for key, value in overrides.items():
        base = key.lstrip("+~")
        assert state[base] == ("~" if key.startswith("~") else str(value))
        assert sum(override_base(t) == base for t in merged) == 1
    assert {k: v for k, v in state.items() if k not in bases} == {k: v for k, v in before.items() if k not in bases}
    assert merged[:3] == ["python", "app.py", "--verbose"]


def test_override_values_in_hydras_grammar():
    text = ("[overrides]\n\"model.lr\" = 0.01\n\"+new.key\" = 1\n\"~drop.key\" = true\nname = \"two words\"\n"
            "layers = [1, 2]\nflag = false\n")
    assert [t for t, _ in merged_command(["python", "app.py", "model.lr=0.1", "name=x"], text)] == [
        "python", "app.py", "model.lr=0.01", "+new.key=1", "~drop.key", "name='two words'", "layers=[1,2]",
        "flag=false"]


# ------------------------------------------------------------------------------------------------
# the kinds: parsing, applying, naming

SCRIPT = '''\
import argparse
p = argparse.ArgumentParser(description="makemore-like")
p.add_argument("--learning-rate", type=float, default=5e-4, help="learning rate")
p.add_argument("--type", type=str, default="transformer", choices=["transformer", "mlp", "bigram"])
p.add_argument("--n-layer", type=int, default=4)
p.add_argument("--max-steps", type=int, default=100)
p.add_argument("--compile", action="store_true")
a = p.parse_args()
quality = {"transformer": 0.0, "mlp": 0.05, "bigram": 0.3}[a.type]
val = 1.0 + abs(a.learning_rate - 2e-3) * 100 + quality + (a.n_layer - 4) * 0.01 - 0.02 * a.compile
print(f"args: {vars(a)}")
print(f"val_loss: {val:.6f}")
'''


def one(raw: dict) -> list:
    return build({"description": "d", "hypothesis": "h", **raw}, "x.toml", 1, "x")


def applied(raw: dict, texts: dict | None = None):
    (h,) = one(raw)
    return h, apply_patch(h, dict(texts or {"train.py": SCRIPT}), ["train.py"], [])


def test_args_name_the_flag_with_its_default_and_write_the_file():
    h, result = applied({"args": {"learning-rate": 2e-3, "type": "mlp", "compile": True}})
    assert describe(h, result) == ["--learning-rate 5e-4 → 2e-3", "--type transformer → mlp",
                                   "--compile false → true"]
    assert result.after["train.py"] == SCRIPT and result.before[ARGS_FILE] == ""
    assert "learning-rate = 0.002" in result.after[ARGS_FILE]
    h2, again = applied({"args": {"learning-rate": 1e-3}}, result.after)  # after a keep: the kept value is the old one
    assert again.changes == [("--learning-rate", "2e-3", "1e-3")]
    assert 'type = "mlp"' in again.after[ARGS_FILE]


@pytest.mark.parametrize("raw, message", [
    ({"args": {"learning_rate": 1.0}}, "no flag --learning_rate (did you mean --learning-rate? argparse accepts the "
                                        "spelling written in add_argument only"),
    ({"args": {"type": "cnn"}}, "args.type: cnn is not a choice of --type (choices: transformer, mlp, bigram)"),
])
def test_args_checked_against_the_scripts_flags(raw, message):
    with pytest.raises(PatchError, match=re.escape(message)):
        applied(raw)


@pytest.mark.parametrize("raw, message", [
    ({"args": {"--lr": 1}}, "args.'--lr': not a flag name"),
    ({"args": {"lr": None}}, "args.lr: NoneType"),
    ({"args": {"lr": float("nan")}}, "not a finite number"),
    ({"args": {"lr": ["-x"]}}, "reads as a flag"),
    ({"args": {"lr": "--"}}, "argparse drops it"),
    ({"args": {"lr": {"a": 1}}}, "args.lr: dict"),
    ({"args": 3}, "args must be a table"),
    ({"overrides": {"~a.b": False}}, "a deletion takes true"),
    ({"overrides": {"a b": 1}}, "not an override key"),
    ({"overrides": {"a": "x\ny"}}, "a line break"),
    ({"sweep": {"model.lr": [1]}}, "sweep.'model.lr': not a Python name"),
])
def test_bad_tables_are_one_clear_line(raw, message):
    with pytest.raises(CollectError, match=re.escape(message)):
        one(raw)


@pytest.mark.parametrize("raw, message", [
    ({"learning-rate": "fast"}, "args.learning-rate: fast for --learning-rate, whose default is the float 5e-4: give a "
                                "number (or set allow_type_change = true)"),
    ({"n-layer": 2.5}, "whose default is the int 4: give an integer"),
    ({"compile": "yes"}, "--compile is a flag without a value: give true or false"),
    ({"n-layer": True}, "--n-layer takes a value (4): true/false only add or drop a flag"),
])
def test_a_value_of_another_type_is_refused_unless_allowed(raw, message):
    with pytest.raises(PatchError, match=re.escape(message)):
        applied({"args": raw})
    assert applied({"args": raw, "allow_type_change": True})[1].changes


def test_sweeps_over_flags_and_override_keys_name_them():
    hs = one({"description": "sweep", "args": {"n-layer": 4}, "overrides": {"model.lr": 0.1},
              "sweep": {"--type": ["mlp", "bigram"], "model.lr": [0.01], "LR": [1]}})
    assert [h.name for h in hs] == ["x[mlp-0.01-1]", "x[bigram-0.01-1]"]
    assert hs[0].description == "sweep (--type=mlp, model.lr=0.01, LR=1)"
    assert hs[0].patch("args") == (("n-layer", 4), ("type", "mlp"))
    assert hs[0].patch("overrides") == (("model.lr", 0.01),) and hs[0].patch("set") == (("LR", 1),)


def test_new_kinds_leave_existing_keys_and_are_registered_as_modern():
    kinds = {k.name: k for k in builtin_kinds()}
    assert not kinds["args"].legacy and not kinds["overrides"].legacy
    (plain,) = one({"set": {"LR": 0.1}})
    (same,) = one({"set": {"LR": 0.1}, "args": {}})
    (other,) = one({"set": {"LR": 0.1}, "args": {"lr": 1}})
    assert plain.key == same.key != other.key


def test_flags_are_read_from_argparse_click_and_typer_sources():
    click = ('import click\n@click.command()\n@click.option("--lr", default=0.1)\n'
             '@click.option("--fast/--slow", default=False)\n@click.option("--kind", type=click.Choice(["a", "b"]))\n'
             'def main(lr, fast, kind): pass\n')
    typer = ('import typer\ndef main(learning_rate: float = 0.01, steps: int = typer.Option(5, "--steps"), '
             'debug: bool = False, name: str = typer.Argument(...)): pass\ntyper.run(main)\n')
    assert {n: (f.default, f.kind) for n, f in flags(SCRIPT).items()} == {
        "learning-rate": (5e-4, "value"), "type": ("transformer", "value"), "n-layer": (4, "value"),
        "max-steps": (100, "value"), "compile": (False, "bool")}
    found = flags(click)
    assert found["lr"].default == 0.1 and found["fast"].kind == "bool" and found["kind"].choices == ("a", "b")
    assert {n: f.default for n, f in flags(typer).items()} == {"learning-rate": 0.01, "steps": 5, "debug": False}
    assert flags("def broken(:\n") == {}


def test_the_python_api_records_args_and_overrides():
    from autoresearch.decorator import from_function, hypothesis

    @hypothesis(description="mlp", sweep={"--n-layer": [2, 3]})
    def mlp(patch):
        """An MLP is enough."""
        patch.args({"learning-rate": 2e-3}, type="mlp")
        patch.overrides({"model.lr": 0.01})

    hs = from_function(mlp, "h.py")
    assert [h.patch("args") for h in hs] == [(("learning-rate", 2e-3), ("type", "mlp"), ("n-layer", n)) for n in (2, 3)]
    assert hs[0].patch("overrides") == (("model.lr", 0.01),)

    @hypothesis(description="wrong")
    def wrong(patch):
        """A list is not a call."""
        patch.args(["learning-rate"])

    with pytest.raises(CollectError, match=re.escape("patch.args() takes one table and keyword arguments")):
        from_function(wrong, "h.py")


# ------------------------------------------------------------------------------------------------
# end to end: settings only, no conftest.py


def make_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for name, text in files.items():
        write(root / name, text)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "new@example.com")
    git(root, "config", "user.name", "New User")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "my trainer")
    return root


def settle(root: Path, edit) -> None:
    """The user's edits to what init wrote, committed."""
    table = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(edit(table))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "autoresearch settings")


def logs_of(root: Path, tag: str) -> list[str]:
    entries = [json.loads(x) for x in (root / f".autoresearch/runs/{tag}/results.jsonl").read_text().splitlines()]
    out = []
    for e in entries:
        path = Path(e["runs"][0]["log_path"])
        out.append((path if path.is_absolute() else root / path).read_text())
    return out


def test_an_argparse_script_from_init_to_a_kept_flag(tmp_path, monkeypatch, cli):
    root = make_project(tmp_path / "makemore", {"train.py": SCRIPT})
    monkeypatch.chdir(root)
    r = cli("init")
    assert r.rc == 0, r
    table = (root / "pyproject.toml").read_text()
    assert 'command = ["{python}", "train.py", "--max-steps={budget_steps}"]' in table
    assert "budget_steps = 100" in table and "--learning-rate, --type" in table
    example = (root / "experiments" / "example.toml").read_text()
    assert "[args]\nlearning-rate = 0.001\n" in example and "instead of 5e-4" in example
    (root / "experiments" / "example.toml").unlink()
    settle(root, lambda t: re.sub(r'(?m)^metric = .*$', 'metric = "val_loss"', t) + "repeats = 1\nmax_repeats = 1\n")

    assert cli("new", "higher learning rate", "--arg", "learning-rate=2e-3", "--name", "lr").rc == 0
    assert cli("new", "an mlp, compiled", "--arg", "type=mlp", "--arg=--compile=true", "--name", "mlp").rc == 0
    write(root / "experiments" / "depth.toml", '''
        description = "depth and type"
        hypothesis = "Fewer layers, each model type."
        [args]
        n-layer = 4
        [sweep]
        "--n-layer" = [3]
        "--type" = ["bigram", "transformer"]
        ''')
    r = cli("new", "short runs", "--arg", "max-steps=5", "--name", "steps", "--dir", "other")
    assert r.rc == 0, r
    r = cli("run", "other", "--collect-only")
    assert "the command sets --max-steps={budget_steps} from a placeholder, which wins" in r.err, r
    r = cli("new", "bad", "--arg", "learning_rate=1")
    assert r.rc != 0 and "did you mean --learning-rate?" in r.err, r

    r = cli("run", "--collect-only")
    assert r.rc == 0, r
    assert "--learning-rate 5e-4 → 2e-3" in r.out and "--type transformer → mlp, --compile false → true" in r.out
    assert "experiments/depth.toml::depth[3-bigram]\n    --n-layer 4 → 3, --type transformer → bigram" in r.out

    r = cli("run", "--tag", "t1")
    assert r.rc == 0, r
    rows = read_results(root / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("depth and type (--n-layer=3, --type=bigram)", "discard"),
        ("depth and type (--n-layer=3, --type=transformer)", "keep"), ("higher learning rate", "keep"),
        ("an mlp, compiled", "discard")]
    logs = logs_of(root, "t1")
    assert "'learning_rate': 0.0005, 'type': 'transformer', 'n_layer': 4" in logs[0]
    assert "'n_layer': 3" in logs[3] and "'learning_rate': 0.002" in logs[3]  # the kept --n-layer carried on
    assert "'type': 'mlp'" in logs[4] and "'learning_rate': 0.002" in logs[4] and "'compile': True" in logs[4]
    journal = (root / "experiments" / "journal.md").read_text()
    for line in ("- --learning-rate: 5e-4 → 2e-3", "- --type: transformer → mlp", "- --compile: false → true",
                 "- --n-layer: 4 → 3", "- --type: transformer → bigram"):
        assert line in journal, line
    report = cli("report").out
    assert "| --learning-rate | 5e-4 |" in report and "| --type | transformer |" in report
    assert "| --compile | false |" in report and "(code: replace, diff)" not in report
    branch = git(root, "show", "autoresearch/t1:" + ARGS_FILE)  # a checkout of the branch has the best flags
    assert "learning-rate = 0.002" in branch and "n-layer = 3" in branch and "mlp" not in branch
    assert not (root / ARGS_FILE).exists()  # the user's checkout is never touched


HYDRA_APP = '''\
import sys
cfg = {"model.lr": 0.1, "model.depth": 4}
for arg in sys.argv[1:]:
    key, value = arg.lstrip("+").split("=", 1)
    cfg[key] = float(value)
print(f"cfg: {cfg}")
print(f"val_loss: {1 + abs(cfg['model.lr'] - 0.02) * 10 + cfg.get('model.extra', 0):.6f}")
'''


def test_hydra_overrides_end_to_end(tmp_path, monkeypatch, cli):
    root = make_project(tmp_path / "app", {"app.py": HYDRA_APP, "pyproject.toml": (
        f'[tool.autoresearch]\neditable = ["app.py"]\ncommand = ["{sys.executable}", "app.py", "model.depth=2"]\n'
        'metric = "val_loss"\nrepeats = 1\nmax_repeats = 1\n')})
    monkeypatch.chdir(root)
    assert cli("new", "lower lr", "--override", "model.lr=0.02", "--name", "a_lr").rc == 0
    assert cli("new", "extra", "--override", "+model.extra=0.5", "--override", "model.depth=3",
               "--name", "b_extra").rc == 0
    r = cli("run", "--collect-only")
    assert "model.lr (config) → 0.02" in r.out and "model.extra (absent) → 0.5, model.depth 2 → 3" in r.out, r
    r = cli("run", "--tag", "h1")
    assert r.rc == 0, r
    logs = logs_of(root, "h1")
    assert "'model.lr': 0.02, 'model.depth': 2.0" in logs[1]
    assert "'model.lr': 0.02, 'model.depth': 3.0, 'model.extra': 0.5" in logs[2]  # the kept override carried on
    journal = (root / "experiments" / "journal.md").read_text()
    assert "- model.lr: (config) → 0.02" in journal and "- model.extra: (absent) → 0.5" in journal
    assert "- model.depth: 2 → 3" in journal


NANO_TRAIN = '''\
import sys
learning_rate = 6e-4
max_iters = 100
batch_size = 8
exec(open(sys.argv[1]).read())  # the config file on the command line, as nanoGPT's configurator does
print(f"val_loss: {1 + abs(learning_rate - 1e-3) * 100 + 8 / batch_size:.6f}")
'''
NANO_CONFIG = '''\
# shakespeare-char, tiny
learning_rate = 2e-3
batch_size = 4
'''


def test_an_execd_config_script_init_picks_the_config_and_set_on_train_warns(tmp_path, monkeypatch, cli):
    root = make_project(tmp_path / "nano", {"train.py": NANO_TRAIN, "config/x.py": NANO_CONFIG})
    monkeypatch.chdir(root)
    r = cli("init", "--command", "python train.py config/x.py")
    assert r.rc == 0, r
    table = (root / "pyproject.toml").read_text()
    assert 'editable = ["config/x.py"]' in table and 'command = ["{python}", "train.py", "config/x.py"]' in table
    assert "config/x.py is the config file the command passes" in table
    example = (root / "experiments" / "example.toml").read_text()
    assert "[set]\nlearning_rate = 0.004" in example
    (root / "experiments" / "example.toml").unlink()
    settle(root, lambda t: re.sub(r'(?m)^metric = .*$', 'metric = "val_loss"', t).replace(
        'editable = ["config/x.py"]', 'editable = ["config/x.py", "train.py"]') + "repeats = 1\nmax_repeats = 1\n")
    write(root / "experiments" / "on_train.toml", '''
        description = "lr in train.py"
        hypothesis = "The config file sets it again: a no-op."
        file = "train.py"
        [set]
        learning_rate = 1e-3
        ''')
    write(root / "experiments" / "warmup.toml", '''
        description = "warmup"
        hypothesis = "Nothing reads it."
        allow_new = true
        [set]
        warmup_iters = 10
        ''')
    assert cli("new", "lr in the config", "--set", "learning_rate=1e-3", "--name", "lr").rc == 0
    r = cli("run", "--collect-only")
    assert r.rc == 0, r
    assert ("experiments/on_train.toml:6: warning: set.learning_rate: config/x.py, passed on the command line, "
            "sets learning_rate after train.py does") in r.err, r
    assert "set.warmup_iters: allow_new adds warmup_iters, which no editable file" in r.err
    assert "experiments/lr.toml" not in r.err  # the config file's own constant: no warning
    r = cli("run", "--tag", "n1", "experiments/lr.toml")
    assert r.rc == 0, r
    assert [(x["description"], x["status"]) for x in read_results(root / "results.tsv")] == [
        ("baseline", "keep"), ("lr in the config", "keep")]
    assert "- learning_rate: 2e-3 → 1e-3" in (root / "experiments" / "journal.md").read_text()


def test_mlflow_params_name_the_flag(tmp_path, monkeypatch, cli):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from conftest import run_subprocess

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    root = make_project(tmp_path / "makemore", {"train.py": SCRIPT, "pyproject.toml": (
        f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\nmetric = "val_loss"\nrepeats = 1\n'
        f'max_repeats = 1\nmlflow_tracking_uri = "{uri}"\n')})
    monkeypatch.chdir(root)
    assert cli("new", "higher learning rate", "--arg", "learning-rate=2e-3", "--arg", "type=mlp",
               "--name", "lr").rc == 0
    r = run_subprocess(root, "run", "--tag", "m1")
    assert r.returncode == 0, r.stderr
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("autoresearch")
    runs = client.search_runs([experiment.experiment_id], max_results=10)
    child = next(run for run in runs if run.info.run_name == "001-lr")
    assert child.data.params == {"--learning-rate": "2e-3", "--type": "mlp"}
