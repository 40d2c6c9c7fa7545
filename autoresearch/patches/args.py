"""``args`` and ``overrides``: command-line flags and Hydra overrides as data.

Both write their table into ``autoresearch.args.toml`` at the project root (:mod:`.argv`), which
the experiment's commit holds like any patched file, and which the runner merges into the command
of every run of that commit. A parameter is named as the command line has it: ``--learning-rate``
(``-n`` for one letter) for a flag, the key (``model.lr``) for an override, in ``--collect-only``,
sweeps, results, the journal, the report and MLflow alike.
"""
from __future__ import annotations

from typing import Any

from autoresearch.errors import PatchError
from autoresearch.patches import PatchKind, PatchResult
from autoresearch.patches.argv import (ARGS_FILE, FLAG_NAME, OVERRIDE_KEY, arg_problem, command_override,
                                       command_value, dump, flag, hydra_value, load, shown)
from autoresearch.patches.flags import all_flags
from autoresearch.patches.set import literal_problem, option_value


def _file(result: PatchResult, kind: str) -> dict[str, dict[str, Any]]:
    """The args file's tables as the patch has them so far (created when absent)."""
    if ARGS_FILE not in result.after:
        result.before[ARGS_FILE] = result.after[ARGS_FILE] = ""
    try:
        return load(result.after[ARGS_FILE])
    except ValueError as exc:
        raise PatchError(str(exc), kind) from None


def _pairs(values: list[str], option: str, example: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"{option} {item!r}: write NAME=VALUE, e.g. {option} {example}")
        key, value = item.split("=", 1)
        out[key.strip().lstrip("-") if option == "--arg" else key.strip()] = option_value(value.strip())
    return out


def _calls(calls: list[tuple[tuple, dict]], name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for args, kwargs in calls:
        if len(args) > 1 or (args and not isinstance(args[0], dict)):
            raise TypeError(f"patch.{name}() takes one table and keyword arguments (patch.{name}("
                            + ('{"learning-rate": 2e-3}, type="mlp")' if name == "args" else '{"model.lr": 0.01})'))
        out.update(*args, **kwargs)
    return out


class ArgsKind(PatchKind):
    """``[args] learning-rate = 2e-3``: flags of the command, by name without their dashes, spelt as
    the script's ``add_argument`` spells them (``learning-rate`` and ``learning_rate`` are two
    flags). The value is ``((name, value), ...)``."""

    name = "args"
    fields = {"args": "table of command-line flags, name = value (learning-rate = 2e-3; true/false: "
                      "the flag present or absent; a list: its values)"}
    sweeps = True
    new_option = {"flags": ("--arg",), "dest": "patch_args", "metavar": "FLAG=VALUE",
                  "help": "a command-line flag for the workload, without its dashes (learning-rate=2e-3, type=mlp, "
                          "compile=true); VALUE as for --set. Merged into the command through "
                          f"{ARGS_FILE}, committed with the experiment"}

    def parse(self, raw, fail):
        table = raw.get("args", {})
        if not isinstance(table, dict):
            raise fail("args must be a table of flag = value (learning-rate = 2e-3)", "args")
        for key, value in table.items():
            if not isinstance(key, str) or not FLAG_NAME.fullmatch(key):
                raise fail(f"args.{str(key)[:40]!r}: not a flag name (the flag without its dashes: letters, digits, "
                           "'-', '_', '.', e.g. learning-rate)", str(key))
            problem = arg_problem(value)
            if problem:
                raise fail(f"args.{key}: {problem}", key)
        return tuple(table.items()) or None

    def from_calls(self, calls):
        return _calls(calls, "args")

    def from_new(self, values):
        return _pairs(values, "--arg", "learning-rate=2e-3")

    def claims(self, name: str, raw: dict) -> bool:
        return name.startswith("-") and bool(FLAG_NAME.fullmatch(name.lstrip("-")))

    def sweep(self, value, params):
        return {**(value or {}), **{k.lstrip("-"): v for k, v in params if self.claims(k, {})}}

    def apply(self, value, h, result: PatchResult, editable, protected):
        data = _file(result, self.name)
        known = all_flags({p: t for p, t in result.after.items() if p != ARGS_FILE})
        for name, new in value:
            spec = known.get(name)
            if known and spec is None:
                raise _unknown(name, known)
            if spec is not None and spec.choices and new not in spec.choices:
                raise PatchError(f"args.{name}: {shown(new)} is not a choice of {flag(name)} (choices: "
                                 f"{', '.join(shown(c) for c in spec.choices)})", self.name, name)
            if spec is not None and not h.allow_type_change:
                problem = _type_problem(spec, new)
                if problem:
                    raise PatchError(f"args.{name}: {problem} (or set allow_type_change = true)", self.name, name)
            style = spec.source if spec is not None else ""
            passed = command_value(result.command, name, new)
            if name in data["args"]:
                old = shown(data["args"][name], style)
            elif passed is not None:
                old = passed
            elif spec is not None and (spec.source or spec.kind == "bool"):
                old = shown(spec.default, style)
            else:
                old = "false" if isinstance(new, bool) else "(default)"
            data["args"][name] = new
            result.changes.append((flag(name), old, shown(new, style)))
        result.after[ARGS_FILE] = dump(data)

    def describe(self, value, result):
        return [f"{n} {o} → {v}" for n, o, v in result.by_kind.get(self.name, ())]

    def key(self, value):
        return {"args": [list(pair) for pair in value]} if value else {}  # unused: no entry (keys stay as they were)


def _type_problem(spec: Any, new: Any) -> str | None:
    """Why `new` does not fit a flag as its source defines it (a presence flag, a number), or None."""
    if spec.kind == "bool":
        return None if isinstance(new, bool) else f"{flag(spec.name)} is a flag without a value: give true or false"
    if isinstance(new, bool):
        return f"{flag(spec.name)} takes a value ({spec.source or 'no default'}): true/false only add or drop a flag"
    old = spec.default
    if isinstance(old, bool) or not isinstance(old, (int, float)) or isinstance(new, list):
        return None
    if isinstance(new, str) or (isinstance(old, int) and isinstance(new, float) and not new.is_integer()):
        return f"{shown(new)} for {flag(spec.name)}, whose default is the {type(old).__name__} {spec.source}: give " \
               f"{'an integer' if isinstance(old, int) else 'a number'}"
    return None


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


def _unknown(name: str, known: dict) -> PatchError:
    spelt = [n for n in known if n.replace("_", "-") == name.replace("_", "-")]
    import difflib  # here: collecting hypotheses needs it only for a misspelt name

    close = spelt or difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    names = ", ".join(flag(n) for n in sorted(known)[:40])
    hint = (f"did you mean {', '.join(flag(n) for n in close)}? " if close else "") + \
        ("argparse accepts the spelling written in add_argument only; " if spelt else "")
    return PatchError(f"args.{name}: the editable files define no flag {flag(name)} ({hint}flags: {names})",
                      "args", name)


class OverridesKind(PatchKind):
    """``[overrides] "model.lr" = 0.01``: Hydra/OmegaConf overrides appended to the command
    (``+key`` adds a key, ``~key = true`` deletes one). The value is ``((key, value), ...)``."""

    name = "overrides"
    fields = {"overrides": "table of Hydra overrides appended to the command, \"model.lr\" = 0.01 "
                           "(\"+new.key\" = 1 adds a key, \"~old.key\" = true deletes one)"}
    sweeps = True
    new_option = {"flags": ("--override",), "dest": "patch_overrides", "metavar": "KEY=VALUE",
                  "help": "a Hydra override for the workload (model.lr=0.01, +new.key=1, ~old.key=true); VALUE as "
                          f"for --set. Appended to the command through {ARGS_FILE}, committed with the experiment"}

    def parse(self, raw, fail):
        table = raw.get("overrides", {})
        if not isinstance(table, dict):
            raise fail('overrides must be a table of "key" = value ("model.lr" = 0.01)', "overrides")
        for key, value in table.items():
            m = OVERRIDE_KEY.fullmatch(key) if isinstance(key, str) else None
            if not m:
                raise fail(f"overrides.{str(key)[:40]!r}: not an override key (a dotted key, model.lr, with + to add "
                           "or ~ to delete one)", str(key))
            if m.group(1) == "~" and value is not True:
                raise fail(f"overrides.{key}: a deletion takes true (\"{key}\" = true)", key)
            problem = literal_problem(value) or ("a string with a line break" if any(
                "\n" in s or "\r" in s or "\0" in s for s in _strings(value)) else None)
            if problem:
                raise fail(f"overrides.{key}: {problem} (allowed: numbers, strings, true/false, lists, tables)", key)
        return tuple(table.items()) or None

    def from_calls(self, calls):
        return _calls(calls, "overrides")

    def from_new(self, values):
        return _pairs(values, "--override", "model.lr=0.01")

    def claims(self, name: str, raw: dict) -> bool:
        return name in (raw.get("overrides") or {})

    def sweep(self, value, params):
        return {**(value or {}), **{k: v for k, v in params if k in (value or {})}}

    def apply(self, value, h, result: PatchResult, editable, protected):
        data = _file(result, self.name)
        table = data["overrides"]
        for key, new in value:
            m = OVERRIDE_KEY.fullmatch(key)
            prefix, base = m.group(1) or "", m.group(2)
            before = [k for k in table if (OVERRIDE_KEY.fullmatch(k) or m).group(2) == base]
            old = (hydra_value(table[before[0]]) if not before[0].startswith("~") else "(deleted)") if before \
                else command_override(result.command, base) or ("(absent)" if prefix in ("+", "++") else "(config)")
            for k in before:
                del table[k]
            table[key] = new
            result.changes.append((base, old, "(deleted)" if prefix == "~" else hydra_value(new)))
        result.after[ARGS_FILE] = dump(data)

    def describe(self, value, result):
        return [f"{n} {o} → {v}" for n, o, v in result.by_kind.get(self.name, ())]

    def key(self, value):
        return {"overrides": [list(pair) for pair in value]} if value else {}


ARGS = ArgsKind()
OVERRIDES = OverridesKind()
