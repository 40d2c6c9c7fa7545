"""The ``keys`` patch kind: keys of YAML, JSON and TOML files, assigned by dotted path.

Property tests build random documents (nested tables, lists, comments, every scalar type), write
them as each format writes them, and check that applying a key then parsing the file gives
exactly the intended change, every other key unchanged, and every byte outside the changed
value as it was. End to end, a project whose workload reads its config file goes through
``init``, ``new --key``, ``run --collect-only`` and ``run``, in each format.
"""
from __future__ import annotations

import copy
import json
import math
import re
import tomllib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autoresearch.errors import PatchError
from autoresearch.patches.keyfiles import Slot, find
from autoresearch.patches.keys import apply_keys, flatten, parse_path
from autoresearch.plugins.results_tsv import read_results
from conftest import git, hyp, write


def load(fmt: str, text: str):
    if fmt == "json":
        return json.loads(text)
    if fmt == "toml":
        return tomllib.loads(text)
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


# -------------------------------------------------------------------------------------------
# random documents, written as each format writes them (with comments where it has them)

KEY = st.one_of(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True),
                st.sampled_from(["a.b", "with space", "0", "12", "ключ", "q\"uote", "true", "null", "on"]))
FLOAT = st.floats(-1e12, 1e12, allow_nan=False).filter(lambda x: x != 0 or math.copysign(1, x) > 0) | st.sampled_from(
    [1e-3, 6e-4, 2.5e-07, 1e20, 0.5])
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
SCALAR = st.one_of(st.booleans(), st.integers(-2 ** 63 + 1, 2 ** 63 - 1), FLOAT, TEXT, st.sampled_from(["relu", "a b"]))


def documents(fmt: str):
    scalar = SCALAR if fmt == "toml" else SCALAR | st.none()
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(KEY, inner, min_size=1, max_size=3), max_leaves=12)
    return st.dictionaries(KEY, value, min_size=1, max_size=5)


def yaml_scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = repr(v)
        return text if "." in text.split("e")[0] else text.replace("e", ".0e")
    if isinstance(v, int):
        return str(v)
    if re.fullmatch(r"[a-z][a-z ]*[a-z]", v) and v not in ("true", "false", "null", "on", "off", "yes", "no", "y", "n"):
        return v
    return json.dumps(v)  # ASCII: a double-quoted YAML scalar


def write_yaml(doc, indent: int = 0, comments: bool = True) -> str:
    """Block style with a comment after every scalar, lists of scalars in flow style."""
    pad, out = " " * indent, []
    for key, value in doc.items():
        k = yaml_scalar(key)
        if isinstance(value, dict) and value:
            out.append(f"{pad}{k}:  # table {k}\n" + write_yaml(value, indent + 2, comments))
        elif isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
            out.append(f"{pad}{k}:\n" + "".join(f"{pad}- {json.dumps(v)}\n" for v in value))
        elif isinstance(value, (list, dict)):
            out.append(f"{pad}{k}: {json.dumps(value)}\n")
        else:
            out.append(f"{pad}{k}: {yaml_scalar(value)}" + (f"   # the {k}\n" if comments else "\n"))
    return "".join(out)


def write_toml(doc) -> str:
    import tomlkit

    def build(table, data):
        for key, value in data.items():
            if isinstance(value, dict):
                sub = tomlkit.table()
                build(sub, value)
                table.add(key, sub)
            else:
                item = tomlkit.item(value)
                if not isinstance(value, list):
                    item.comment(f"the {key}")
                table.add(key, item)

    out = tomlkit.document()
    out.add(tomlkit.comment("a config file"))
    build(out, doc)
    return tomlkit.dumps(out)


def dump(fmt: str, doc, style: int) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=(None, 2, 4)[style % 3], ensure_ascii=bool(style % 2)) + "\n"
    if fmt == "yaml":
        return "# a config file\n" + write_yaml(doc)
    return write_toml(doc)


def leaves(data, prefix=()):
    """Every (path segments, value) of a document, tables and lists included."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        path = (*prefix, key)
        yield path, value
        if isinstance(value, (dict, list)) and value:
            yield from leaves(value, path)


def path_text(path) -> str:
    from autoresearch.patches.keyfiles import Segment

    return ".".join(str(p) if isinstance(p, int) else Segment(p).text for p in path)


def replaced(doc, path, value):
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


def same_type_value(old, draw):
    if isinstance(old, bool):
        return draw(st.booleans())
    if isinstance(old, int):
        return draw(st.integers(-2 ** 63 + 1, 2 ** 63 - 1))
    if isinstance(old, float):
        return draw(FLOAT | st.integers(-1000, 1000))
    if isinstance(old, str):
        return draw(TEXT)
    if isinstance(old, list):
        return draw(st.lists(st.integers(0, 9) | TEXT, max_size=3))
    if isinstance(old, dict):
        return draw(st.dictionaries(KEY, st.integers(0, 9), min_size=1, max_size=2))
    return draw(SCALAR)


def check_only_the_value_changed(fmt, text, out, path):
    """Every byte before and after the old value's bytes is as it was."""
    slot = find(fmt, text, parse_path(path_text(path)))
    assert isinstance(slot, Slot)
    if slot.start < 0:  # a TOML table or list: tomlkit writes it (its other lines are kept, not checked here)
        return
    assert out.startswith(text[:slot.start]) and out.endswith(text[slot.end:]), (text, out)


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml"])
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_key_changes_exactly_its_value(fmt, data):
    doc = data.draw(documents(fmt))
    text = dump(fmt, doc, data.draw(st.integers(0, 5)))
    doc = load(fmt, text)  # as the format reads what it wrote (TOML floats, YAML's keys)
    path, old = data.draw(st.sampled_from(list(leaves(doc))))
    new = same_type_value(old, data.draw)
    if fmt == "toml":
        assume(not isinstance(new, list) or not any(isinstance(v, dict) for v in new))
    out, changes = apply_keys(text, fmt, ((path_text(path), new),), f"config.{fmt}")
    want = float(new) if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool) else new
    assert load(fmt, out) == replaced(doc, path, want)
    assert changes[0][0] == path_text(path) and "\n" not in changes[0][1] + changes[0][2]
    check_only_the_value_changed(fmt, text, out, path)


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml"])
@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_several_keys_at_once_and_new_keys(fmt, data):
    doc = load(fmt, dump(fmt, data.draw(documents(fmt)), 1))
    text = dump(fmt, doc, data.draw(st.integers(0, 5)))
    doc = load(fmt, text)
    scalars = [(p, v) for p, v in leaves(doc) if not isinstance(v, (dict, list))]
    tables = [p for p, v in leaves(doc) if isinstance(v, dict)] + [()]
    picked = data.draw(st.lists(st.sampled_from(scalars), unique_by=lambda pv: pv[0], max_size=3)) if scalars else []
    parent = data.draw(st.sampled_from(tables))
    fresh = data.draw(st.from_regex(r"new_[a-z]{1,5}", fullmatch=True))
    node = doc
    for p in parent:
        node = node[p]
    assume(fresh not in node)
    values = [(p, same_type_value(v, data.draw)) for p, v in picked]
    values = [(p, float(n) if isinstance(o, float) and isinstance(n, int) and not isinstance(n, bool) else n)
              for (p, n), (_, o) in zip(values, picked)]
    added = data.draw(SCALAR)
    pairs = tuple((path_text(p), v) for p, v in values) + ((path_text((*parent, fresh)), added),)
    out, changes = apply_keys(text, fmt, pairs, f"config.{fmt}", allow_new=True)
    want = doc
    for p, v in values:
        want = replaced(want, p, v)
    want = replaced(want, (*parent, fresh), added)
    assert load(fmt, out) == want
    assert changes[-1][1] == "(new)"
    if fmt != "toml" and not values:  # a new key alone is inserted: every byte of the file is still there
        prefix = next((i for i, (a, b) in enumerate(zip(text, out)) if a != b), len(text))
        assert out.endswith(text[prefix:]), (text, out)


# -------------------------------------------------------------------------------------------
# by value: a keep that changed the same line does not stop the patch

LINES = {
    "yaml": ("model:\n  temperature: 0.7   # sampling\n  layers: [16, 32]\n", "temperature: 0.7   # sampling",
             "temperature: 0.65  # cooler, kept"),
    "json": ('{\n  "model": {"temperature": 0.7, "layers": [16, 32]}\n}\n', '"temperature": 0.7',
             '"temperature": 0.65'),
    "toml": ("[model]\ntemperature = 0.7   # sampling\nlayers = [16, 32]\n", "temperature = 0.7   # sampling",
             "temperature = 0.65  # cooler, kept"),
}


@pytest.mark.parametrize("fmt", LINES)
def test_applies_after_another_change_to_the_same_line(fmt):
    text, old, kept = LINES[fmt]
    tip = text.replace(old, kept)
    out, changes = apply_keys(tip, fmt, (("model.temperature", 0.5),), "c")
    assert load(fmt, out)["model"] == {"temperature": 0.5, "layers": [16, 32]}
    assert changes == [("model.temperature", "0.65", "0.5")]
    out2, _ = apply_keys(out, fmt, (("model.layers.1", 64),), "c")  # the same line again, another key on it
    assert load(fmt, out2)["model"] == {"temperature": 0.5, "layers": [16, 64]}
    if fmt != "json":
        assert "# cooler, kept" in out2


# -------------------------------------------------------------------------------------------
# refusals: one line naming the key and what exists


@pytest.mark.parametrize("fmt", LINES)
def test_an_unknown_key_is_refused_with_what_exists(fmt):
    text = LINES[fmt][0]
    with pytest.raises(PatchError) as info:
        apply_keys(text, fmt, (("model.temprature", 0.5),), f"config.{fmt}")
    assert str(info.value) == (f"keys.model.temprature: config.{fmt} has no key model.temprature (did you mean "
                               "model.temperature? keys of model: temperature, layers; allow_new = true adds it)")
    assert info.value.key == "model.temprature"
    with pytest.raises(PatchError, match=r"keys.model.layers.5: model.layers in c is a list of 2 items "
                                         r"\(indices 0 to 1\); 5 is past its end \(keys changes items; it does not "
                                         r"add them, even with allow_new\)"):
        apply_keys(text, fmt, (("model.layers.5", 1),), "c", allow_new=True)
    with pytest.raises(PatchError, match=r"model.temperature in c is a float \(0.7\), not a table or a list"):
        apply_keys(text, fmt, (("model.temperature.x", 1),), "c", allow_new=True)


@pytest.mark.parametrize("fmt", LINES)
def test_a_type_change_is_refused_unless_allowed(fmt):
    text = LINES[fmt][0]
    with pytest.raises(PatchError) as info:
        apply_keys(text, fmt, (("model.temperature", "hot"),), "c")
    assert str(info.value) == ("keys.model.temperature: type change from float (0.7) to str ('hot') (give a float, "
                               "or set allow_type_change = true)")
    out, _ = apply_keys(text, fmt, (("model.temperature", "hot"),), "c", allow_type_change=True)
    assert load(fmt, out)["model"]["temperature"] == "hot"
    out, _ = apply_keys(text, fmt, (("model.temperature", 1),), "c")  # an int for a float stays a float
    assert load(fmt, out)["model"]["temperature"] == 1.0 and isinstance(load(fmt, out)["model"]["temperature"], float)


@pytest.mark.parametrize("fmt", LINES)
def test_allow_new_adds_a_key_and_the_tables_it_needs(fmt):
    text = LINES[fmt][0]
    out, changes = apply_keys(text, fmt, (("model.warmup.steps", 100), ("model.act", "silu")), "c", allow_new=True)
    assert load(fmt, out)["model"] == {"temperature": 0.7, "layers": [16, 32], "warmup": {"steps": 100},
                                       "act": "silu"}
    assert changes == [("model.warmup.steps", "(new)", "100"), ("model.act", "(new)", '"silu"' if fmt != "yaml"
                                                                else "silu")]
    if fmt == "yaml":
        assert out == text + "  warmup: {steps: 100}\n  act: silu\n"


def test_paths_quoting_and_flattening():
    assert [s.name for s in parse_path('a."b.c".0')] == ["a", "b.c", "0"]
    assert parse_path('a."b.c".0')[2].index == 0 and parse_path('"0"')[0].index is None
    assert [s.name for s in parse_path(r'"say \"hi\""')] == ['say "hi"']
    for bad in ["", "a..b", 'a."b', 'a"b', '"a"b', "a."]:
        with pytest.raises(ValueError):
            parse_path(bad)
    # [keys] with a bare dotted key in TOML is a nested table: read as the dotted path
    assert flatten({"model": {"temperature": 1.0, "a.b": 2}, "x": {}}) == [
        ("model.temperature", 1.0), ('model."a.b"', 2), ("x", {})]
    out, _ = apply_keys('{"a.b": {"c": 1}, "a": {"b": {"c": 2}}}', "json", (('"a.b".c', 5),), "c")
    assert json.loads(out) == {"a.b": {"c": 5}, "a": {"b": {"c": 2}}}


def test_yaml_specifics():
    text = "base: &b {lr: 0.1}\ntrain: *b\nsteps: 1e-3\nname: 'it''s'\nnote: |\n  two\n  lines\nend: 1\n"
    for key in ("base.lr", "train.lr"):
        with pytest.raises(PatchError, match="anchor .&b. that aliases share"):
            apply_keys(text, "yaml", ((key, 0.2),), "c.yaml")
    out, changes = apply_keys(text, "yaml", (("steps", 0.002), ("name", "its"), ("note", "one")), "c.yaml")
    assert "steps: 2.0e-3\nname: 'its'\nnote: \"one\"\nend: 1\n" in out  # PyYAML reads 2.0e-3 as a float too
    assert changes[0] == ("steps", "1e-3", "2.0e-3")
    import yaml  # PyYAML: the YAML 1.1 reader most workloads use

    assert yaml.safe_load(out)["steps"] == 0.002
    with pytest.raises(PatchError, match="keys: c.yaml does not parse as YAML"):
        apply_keys("a: [1\n", "yaml", (("a", 1),), "c.yaml")
    out, _ = apply_keys("x: 1\n", "yaml", (("x", "yes"), ), "c.yaml", allow_type_change=True)
    assert yaml.safe_load(out) == {"x": "yes"}  # a word YAML 1.1 reads as a boolean is quoted


def test_toml_has_no_null_and_json_keeps_its_bytes():
    with pytest.raises(PatchError, match="TOML has no null"):
        apply_keys("a = 1\n", "toml", (("a", None),), "c.toml", allow_type_change=True)
    text = '{\n\t"a": 1,   "b": [1,2],\n\t"c": "x"\n}'
    out, _ = apply_keys(text, "json", (("b.1", 3), ("c", "é")), "c.json")
    assert out == '{\n\t"a": 1,   "b": [1,3],\n\t"c": "é"\n}'


# -------------------------------------------------------------------------------------------
# the kind in the runner: collection errors, set's refusal, the Python API, new, run

CONFIGS = {
    "yaml": ("config.yaml", "# sampling settings\nmodel:\n  temperature: 0.7   # how random\n  layers: [16, 32]\n",
             "from ruamel.yaml import YAML\ncfg = YAML(typ='safe').load(open('config.yaml'))\n"),
    "json": ("config.json", '{\n    "model": {\n        "temperature": 0.7,\n        "layers": [16, 32]\n    }\n}\n',
             "import json\ncfg = json.load(open('config.json'))\n"),
    "toml": ("config.toml", "# sampling settings\n[model]\ntemperature = 0.7  # how random\nlayers = [16, 32]\n",
             "import tomllib\ncfg = tomllib.load(open('config.toml', 'rb'))\n"),
}
WORKLOAD = ("t = cfg['model']['temperature']\nprint('---')\n"
            "print(f\"val_loss: {1 + (t - 0.3) ** 2 + cfg['model']['layers'][0] * 0.001:.6f}\")\n")


@pytest.fixture(params=list(CONFIGS))
def configured(request, tmp_path, monkeypatch):
    """A project whose workload reads its YAML, JSON or TOML config and prints val_loss."""
    name, config, reader = CONFIGS[request.param]
    root = tmp_path / "sampler"
    write(root / name, config)
    write(root / "train.py", reader + WORKLOAD)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "k@example.com")
    git(root, "config", "user.name", "K")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a sampler")
    monkeypatch.chdir(root)
    return root, name


def test_init_new_collect_run_name_the_key(configured, cli):
    root, name = configured
    assert cli("init").rc == 0
    table = (root / "pyproject.toml").read_text()
    table = re.sub(r"(?m)^editable = .*$", f'editable = ["train.py", "{name}"]', table)
    table = re.sub(r"(?m)^metric = .*$", 'metric = "val_loss"', table)
    (root / "pyproject.toml").write_text(table.replace("# budget = 300", "repeats = 1"))
    (root / "experiments" / "example.toml").unlink(missing_ok=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "autoresearch init")

    assert cli("new", "cooler", "--key", "model.temperature=0.4", "--file", name).rc == 0
    assert cli("new", "cooler still", "--key", "model.temperature=0.35").rc == 0  # the only config file
    assert cli("new", "wider", "--key", "model.layers.0=64").rc == 0
    r = cli("new", "typo", "--key", "model.temprature=0.4")
    assert r.rc != 0 and "did you mean model.temperature?" in r.err
    r = cli("new", "set on config", "--set", "temperature=0.4", "--file", name)
    assert r.rc != 0 and "set assigns Python constants (use [keys]" in r.err

    r = cli("run", "--collect-only")
    assert r.rc == 0, r
    assert "model.temperature 0.7 → 0.4  (+1 -1 lines)" in r.out and "model.layers.0 16 → 64" in r.out
    r = cli("run", "--tag", "k")
    assert r.rc == 0, r
    rows = read_results(root / "results.tsv")
    assert [(x["description"], x["status"]) for x in rows] == [
        ("baseline", "keep"), ("cooler", "keep"), ("cooler still", "keep"), ("wider", "discard")]
    journal = (root / "experiments" / "journal.md").read_text()
    assert "- model.temperature: 0.7 → 0.4" in journal and f"(keys in {name};" in journal
    assert "- model.temperature: 0.4 → 0.35" in journal  # by value: applied on the kept line
    entries = [json.loads(line) for line in (root / ".autoresearch/runs/k/results.jsonl").read_text().splitlines()]
    assert [e.get("changes") for e in entries[1:]] == [
        [["model.temperature", "0.7", "0.4"]], [["model.temperature", "0.4", "0.35"]], [["model.layers.0", "16", "64"]]]
    report = cli("report").out  # the parameters table names the key; no row of unnamed code changes
    assert "| model.temperature | 0.7 | 0.7 → **0.4** ↓ | 0.4 → **0.35** ↓ |  |" in report, report
    assert "(code: replace, diff)" not in report
    kept = git(root, "show", f"autoresearch/k:{name}") + "\n"  # the run's branch: the kept change, every other byte
    assert kept == CONFIGS[name.split(".")[1]][1].replace("0.7", "0.35")


def test_collection_errors_name_the_file_and_key(configured, cli):
    root, name = configured
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\neditable = ["train.py", "{name}"]\n'
                                         'metric = "val_loss"\ncommand = ["{python}", "train.py"]\n')
    git(root, "add", "-A")
    git(root, "commit", "-qm", "settings")
    hyp(root, "typo", 'description = "t"\nhypothesis = "h"\n[keys]\n"model.temprature" = 0.4\n')
    hyp(root, "newset", 'description = "n"\nhypothesis = "h"\nfile = "train.py"\nallow_new = true\n'
                        '[set]\nWARM = 1\n')
    hyp(root, "same", 'description = "s"\nhypothesis = "h"\n[keys]\n"model.temperature" = 0.7\n')
    r = cli("run", "--collect-only")
    assert r.rc == 4
    assert (f"experiments/same.toml:4: warning: keys.model.temperature = 0.7 changes nothing (model.temperature is "
            f"already 0.7 in {name})") in r.err
    assert (f"experiments/typo.toml:4: keys.model.temprature: {name} has no key model.temprature (did you mean "
            "model.temperature?") in r.err
    (root / "experiments" / "newset.toml").write_text(f'description = "n"\nhypothesis = "h"\nfile = "{name}"\n'
                                                      'allow_new = true\n[set]\nWARM = 1\n')
    r = cli("run", "--collect-only")
    assert r.rc == 4 and "experiments/newset.toml:6: set: " in r.err and "use [keys]" in r.err


def test_the_python_api(configured, cli):
    root, name = configured
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\neditable = ["train.py", "{name}"]\n'
                                         'metric = "val_loss"\ncommand = ["{python}", "train.py"]\n')
    write(root / "experiments" / "ideas.py", '''\
        from autoresearch import hypothesis

        @hypothesis(description="cooler")
        def cooler(patch):
            """Lower temperature."""
            patch.keys({"model.temperature": 0.4})
            patch.keys(**{"model.layers.1": 8})
        ''')
    r = cli("run", "--collect-only")
    assert r.rc == 0, r
    assert "model.temperature 0.7 → 0.4, model.layers.1 32 → 8" in r.out


def test_mlflow_names_the_keys(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from conftest import run_subprocess

    root = tmp_path / "sampler"
    write(root / "config.yaml", 'model:\n  temperature: 0.7\n  "lr/head": 0.1\n  layers: [16, 32]\n')
    write(root / "train.py", CONFIGS["yaml"][2] + WORKLOAD)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write(root / "pyproject.toml", '[tool.autoresearch]\neditable = ["config.yaml"]\nmetric = "val_loss"\n'
                                   f'command = ["{{python}}", "train.py"]\nrepeats = 1\n'
                                   f'mlflow_tracking_uri = "{uri}"\n')
    hyp(root, "cooler", 'description = "c"\nhypothesis = "h"\n[keys]\n"model.temperature" = 0.4\n'
                        '\'model."lr/head"\' = 0.2\n')
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "k@example.com")
    git(root, "config", "user.name", "K")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a sampler")
    r = run_subprocess(root, "run", "--tag", "m")
    assert r.returncode == 0, r.stderr
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("autoresearch")
    runs = client.search_runs([experiment.experiment_id], max_results=10)
    (child,) = [x for x in runs if x.info.run_name == "001-cooler"]
    assert child.data.params == {"model.temperature": "0.4", "model._lr_head_": "0.2"}


FRAGMENTS = st.sampled_from(["a", ":", " ", "\n", "  ", "- ", "{", "}", "[", "]", ",", '"', "'", "=", "#", "1",
                             "0.5", "true", "null", "&x ", "*x", "!!str ", "---", "|", ">", "\t", "\\", "é", "[[t]]",
                             "[t]", "a.b", "\r\n", "1e3", "~", "?", "%YAML 1.1\n"])
PATHS = st.lists(st.sampled_from(["a", "b", "t", "0", "1", '"a.b"', "x"]), min_size=1, max_size=4).map(".".join)


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml"])
@given(text=st.lists(FRAGMENTS, max_size=30).map("".join) | st.text(max_size=40), path=PATHS,
       value=SCALAR | st.none() | st.lists(st.integers(-2 ** 63, 2 ** 63), max_size=2)
       | st.dictionaries(KEY, st.integers(-9, 9), max_size=2),
       allow=st.booleans())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_file_and_any_key_apply_or_say_why(fmt, text, path, value, allow):
    """Whatever the file holds: a written file that parses as intended, or one PatchError line."""
    try:
        out, _ = apply_keys(text, fmt, ((path, value),), "c", allow_type_change=allow, allow_new=allow)
    except PatchError as exc:
        assert str(exc).startswith(("keys.", "keys:")) and "\n" not in str(exc)
        return
    data = load(fmt, out)
    for seg in parse_path(path):
        if isinstance(data, list):
            data = data[seg.index]
        else:
            data = data[seg.name] if seg.name in data else data[int(seg.name)]  # YAML reads 0: as an integer key
    assert data == value or (
        isinstance(data, float) and data == float(value))


def test_set_points_to_keys_and_keys_changes_no_other_hypothesis_key():
    from autoresearch.model import build
    from autoresearch.patches import apply_patch

    def one(**raw):
        return build({"description": "d", "hypothesis": "h", **raw}, "x.toml", 1, "a")[0]

    texts = {"train.py": "LR = 0.1\n", "config.yaml": "lr: 0.1\n", "run.sh": "LR=0.1\n"}
    editable = list(texts)
    h = one(file="config.yaml", set={"lr": 0.2})
    with pytest.raises(PatchError, match=r"set: config.yaml is a YAML file, and set assigns Python constants \(use "
                                         r"\[keys\] for YAML, JSON and TOML files: \[keys\] \"lr\" = \.\.\.\)"):
        apply_patch(h, texts, editable, [])
    h = one(file="run.sh", set={"WARM": 1}, allow_new=True)
    with pytest.raises(PatchError, match="set: allow_new adds a Python line NAME = value, and run.sh is not a "
                                         "Python file"):
        apply_patch(h, texts, editable, [])
    h = one(file="train.py", set={"LR": 0.2}, keys={"lr": 0.3})
    patch = apply_patch(h, texts, editable, [])  # set on train.py, keys on the only config file, together
    assert patch.after == {"train.py": "LR = 0.2\n", "config.yaml": "lr: 0.3\n", "run.sh": "LR=0.1\n"}
    plain = one(set={"LR": 0.2}).key
    keyed = [one(keys={"lr": v}).key for v in (0.2, 0.3, 0.2)]
    assert keyed[0] != keyed[1] and keyed[0] == keyed[2] and plain not in keyed


@pytest.mark.parametrize("text, path, expected", [
    ("a:\n", "a", "a: 1\n"), ("a:", "a", "a: 1"), ("- a:\n", "0.a", "- a: 1\n"), ("- \n", "0", "- 1 \n"),
    ("-", "0", "- 1"), ("{a: }", "a", "{a: 1 }"), ("a:\n  \nb: 2\n", "a", "a: 1\n  \nb: 2\n")])
def test_an_empty_yaml_value_gets_its_value_after_the_indicator(text, path, expected):
    """A null written as nothing is marked where the next token is: the value goes after its `:`/`-`."""
    out, changes = apply_keys(text, "yaml", ((path, 1),), "c", allow_type_change=True)
    assert out == expected and changes == [(path, "null", "1")]


def test_an_empty_yaml_value_followed_by_a_comment_is_refused_in_one_line():
    with pytest.raises(PatchError, match=r"^keys.a: a in c holds an empty value with a comment after it"):
        apply_keys("a: # c\n", "yaml", (("a", 1),), "c", allow_type_change=True)
