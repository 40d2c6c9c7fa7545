"""Command-line flags and Hydra overrides as data: the tracked file ``autoresearch.args.toml`` and
how its tables merge into the workload's command.

The ``args`` and ``overrides`` patch kinds (:mod:`.args`) write the file, at the project root, as
any patch writes an editable file: it is committed with the experiment, so a kept flag stays on the
research branch and a checkout of the branch reproduces the best configuration.
:func:`autoresearch.execute.command` reads it from the run's folder and merges it:

- ``[args]``: ``learning-rate = 2e-3`` gives ``--learning-rate=2e-3`` (one letter: ``-n=4``). It
  replaces every ``--flag=value``, ``--flag value`` and ``-f value`` / ``-fvalue`` of the command
  before a ``--`` (the first occurrence's place; the others go), else it is added before ``--``
  or at the end. ``true`` adds the bare flag, ``false`` removes it; a list is the flag followed
  by its values (``nargs``). A flag the command sets from a placeholder (``--steps={budget_steps}``)
  is left as it is: the runner's budget wins (collection warns).
- ``[overrides]``: ``"model.lr" = 0.01`` gives ``model.lr=0.01``, ``"+new.key" = 1`` gives
  ``+new.key=1``, ``"~drop.key" = true`` gives ``~drop.key``, after the command's own arguments;
  a command's own override of the same key goes.
"""
from __future__ import annotations

import math
import re
import tomllib
from typing import Any

ARGS_FILE = "autoresearch.args.toml"
HEADER = ("# Command-line flags ([args]) and Hydra overrides ([overrides]) that autoresearch merges into the\n"
          "# workload's command; written by the args and overrides patch kinds (docs/patch-kinds-args.md).\n")
FLAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)  # a flag without its dashes
OVERRIDE_KEY = re.compile(r"(\+\+|\+|~)?([A-Za-z_][\w-]*(?:[./@][A-Za-z0-9_-]+)*)", re.ASCII)
NEGATIVE = re.compile(r"-\d+$|-\d*\.\d+(?:[eE][-+]?\d+)?$|-\d+[eE][-+]?\d+$")  # what argparse takes as a value
PLACEHOLDER = re.compile(r"\{(python|budget|budget_steps|seed|workdir)\}")
HYDRA_WORDS = {"true", "false", "null", "nan", "inf", "none"}


def flag(name: str) -> str:
    """The flag a table key names: ``learning-rate`` -> ``--learning-rate``, ``n`` -> ``-n``."""
    return f"-{name}" if len(name) == 1 else f"--{name}"


def load(text: str) -> dict[str, dict[str, Any]]:
    """The file's ``[args]`` and ``[overrides]`` tables; ValueError (one line) for a malformed file."""
    try:
        data = tomllib.loads(text) if text.strip() else {}
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{ARGS_FILE} is not valid TOML ({exc}); fix it or delete it") from None
    extra = sorted(set(data) - {"args", "overrides"})
    if extra:
        raise ValueError(f"{ARGS_FILE}: unknown table {extra[0]!r} (allowed: args, overrides)")
    out = {"args": data.get("args", {}), "overrides": data.get("overrides", {})}
    for table, values in out.items():
        if not isinstance(values, dict):
            raise ValueError(f"{ARGS_FILE}: {table} must be a table")
    return out


def dump(data: dict[str, dict[str, Any]]) -> str:
    import tomli_w

    return HEADER + tomli_w.dumps({k: v for k, v in data.items() if v})


def number(x: float, style: str = "") -> str:
    """A float as text: in exponent form when `style` (the default's source) is (``5e-4``)."""
    if re.fullmatch(r"[-+]?[\d.]+[eE][-+]?\d+", style.strip()) and x != 0:
        from autoresearch.patches.set import exponent

        return exponent(x)
    return repr(x)


def shown(value: Any, style: str = "") -> str:
    """A flag's value as reports show it (``2e-3``, ``mlp``, ``true``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value, style)
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


def arg_tokens(name: str, value: Any) -> list[str]:
    """The argv that sets one flag: ``--f=v``; the bare flag for true, nothing for false; the flag and
    its values for a list."""
    if value is True:
        return [flag(name)]
    if value is False:
        return []
    if isinstance(value, list):
        return [flag(name), *(shown(v) for v in value)]
    return [f"{flag(name)}={shown(value)}"]


def _looks_like_value(token: str) -> bool:
    return not token.startswith("-") or bool(NEGATIVE.match(token))


def _occurrence(argv: list[str], i: int, name: str, value: Any) -> int:
    """How many tokens from argv[i] set flag `name` (0: not this flag). The arity of a bare
    ``--flag`` follows the new value's: none for a boolean, one for a value, all following values
    for a list."""
    token, spelled = argv[i], flag(name)
    if token.startswith(spelled + "="):
        return 1
    if len(name) == 1 and token.startswith(spelled) and len(token) > 2 and not isinstance(value, (bool, list)):
        return 1  # -n4: a short option with its value attached
    if token != spelled:
        return 0
    if isinstance(value, bool):
        return 1
    end = i + 1
    while end < len(argv) and argv[end] != "--" and _looks_like_value(argv[end]):
        end += 1
        if not isinstance(value, list):
            break
    return end - i


def merge_args(argv: list[str], args: dict[str, Any]) -> list[tuple[str, bool]]:
    """`argv` with the flags of `args` set (see the module's docstring), as (token, ours) pairs: ours
    marks the tokens that came from `args` (no placeholder is ever filled in them)."""
    out = [(t, False) for t in argv]
    for name, value in args.items():
        stop = next((i for i, (t, _) in enumerate(out) if t == "--"), len(out))
        spans, i, tokens = [], 0, [t for t, _ in out]
        while i < stop:
            n = _occurrence(tokens, i, name, value) if not out[i][1] else 0
            if n:
                spans.append((i, n))
            i += max(n, 1)
        if any(PLACEHOLDER.search(t) for s, n in spans for t, _ in out[s:s + n]):
            continue  # the runner's own value ({budget_steps}) wins
        at = spans[0][0] if spans else stop
        for s, n in reversed(spans):
            del out[s:s + n]
        out[at:at] = [(t, True) for t in arg_tokens(name, value)]
    return out


def placeholder_flag(argv: list[str], name: str, value: Any = "x") -> str | None:
    """The command's argument that sets flag `name` from a placeholder (``--steps={budget_steps}``)."""
    stop = argv.index("--") if "--" in argv else len(argv)
    i = 0
    while i < stop:
        n = _occurrence(argv, i, name, value)
        if n and any(PLACEHOLDER.search(t) for t in argv[i:i + n]):
            return " ".join(argv[i:i + n])
        i += max(n, 1)
    return None


def command_value(argv: list[str] | tuple[str, ...], name: str, value: Any) -> str | None:
    """What the command itself passes for flag `name` (the last occurrence wins, as in argparse):
    its value's text, "true" for a bare boolean flag, None when it passes none or sets it from a placeholder."""
    argv = list(argv)
    stop = argv.index("--") if "--" in argv else len(argv)
    found, i = None, 0
    while i < stop:
        n = _occurrence(argv, i, name, value)
        if n:
            found = argv[i:i + n]
        i += max(n, 1)
    if not found or any(PLACEHOLDER.search(t) for t in found):
        return None
    if isinstance(value, bool):
        return "true"
    if len(found) == 1:
        token = found[0]
        return token.split("=", 1)[1] if "=" in token else token[2:] if len(name) == 1 else None
    return "[" + ", ".join(found[1:]) + "]" if isinstance(value, list) else found[1]


def command_override(argv: list[str] | tuple[str, ...], base: str) -> str | None:
    """What the command itself sets key `base` to (``model.depth=2`` -> ``2``), or None."""
    token = next((t for t in reversed(list(argv)) if override_base(t) == base and not PLACEHOLDER.search(t)), None)
    if token is None:
        return None
    return "(deleted)" if token.startswith("~") else token.split("=", 1)[1]


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar: 0.01, true, mlp, 'two words', [1,2], {a:1}."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_/][\w./:@-]*", text, re.ASCII) and text.lower() not in HYDRA_WORDS:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def override_tokens(key: str, value: Any) -> list[str]:
    m = OVERRIDE_KEY.fullmatch(key)
    prefix = m.group(1) if m else ""
    if prefix == "~":
        return [key] if value is True else []
    return [f"{key}={hydra_value(value)}"]


def override_base(token: str) -> str | None:
    """The key an override token sets (``+a.b=1`` -> ``a.b``), None for anything else."""
    m = re.match(r"(\+\+|\+|~)?([A-Za-z_][\w-]*(?:[./@][A-Za-z0-9_-]+)*)(=|$)", token, re.ASCII)
    if not m or (not m.group(3) and m.group(1) != "~"):
        return None
    return m.group(2)


def merge_overrides(argv: list[tuple[str, bool]], overrides: dict[str, Any]) -> list[tuple[str, bool]]:
    """`argv` with the overrides appended after the command's own arguments; the command's own
    override of the same key goes, unless it holds a placeholder (which wins)."""
    out = list(argv)
    for key, value in overrides.items():
        m = OVERRIDE_KEY.fullmatch(key)
        base = m.group(2) if m else key
        own = [i for i, (t, ours) in enumerate(out) if not ours and override_base(t) == base]
        if any(PLACEHOLDER.search(out[i][0]) for i in own):
            continue
        for i in reversed(own):
            del out[i]
        out += [(t, True) for t in override_tokens(key, value)]
    return out


def merged_command(argv: list[str], text: str) -> list[tuple[str, bool]]:
    """The command with the file's ``[args]`` and ``[overrides]`` merged in, as (token, ours) pairs."""
    data = load(text)
    return merge_overrides(merge_args(argv, data["args"]), data["overrides"])


def arg_problem(value: Any) -> str | None:
    """Why `value` cannot be a flag's value, or None."""
    if isinstance(value, bool) or isinstance(value, int):
        return None if abs(value) <= 2 ** 63 else "an integer beyond ±2**63"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, str):
        if value == "--":
            return "the string '--' (argparse drops it from any value: the script would never see it)"
        return "a string with a NUL or a line break" if re.search(r"[\0\n\r]", value) else None
    if isinstance(value, list):
        for v in value:
            if isinstance(v, (list, dict)) or isinstance(v, bool):
                return "a list of lists, tables or booleans (a list holds the flag's values: numbers or strings)"
            problem = arg_problem(v)
            if problem:
                return problem
            if not _looks_like_value(shown(v)) or shown(v) == "--":
                return f"a list value {shown(v)!r} that reads as a flag (argparse would take it for one)"
        return None
    return f"{type(value).__name__} (allowed: numbers, strings, true/false, a list of numbers or strings)"
