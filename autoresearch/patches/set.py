"""``set``: assign module-level constants of the editable file, by name.

``set`` finds module-level assignments through the AST and splices the new value's source into
exactly the bytes of the old value, so every other byte of the file is left as it was.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from typing import Any

from autoresearch.errors import PatchError
from autoresearch.names import PYTHON_NAME
from autoresearch.patches import PatchKind, PatchResult

MAX_DEPTH = 32  # nesting of lists and tables in a set value
MAX_INT = 2 ** 63  # an integer constant beyond this is a mistake, not a hyperparameter
ALLOWED = "finite numbers, integers within ±2**63, strings, booleans, lists and tables of them"


def literal_problem(value: Any, depth: int = 0) -> str | None:
    """Why `set` cannot write `value` as Python source, or None: literals only, no nan or inf,
    integers within ±2**63, strings that are Unicode text, at most 32 levels of nesting."""
    if depth > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -MAX_INT <= value <= MAX_INT else "an integer beyond ±2**63"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return None
        except UnicodeEncodeError:
            return "a string that is not Unicode text (a lone surrogate)"
    if isinstance(value, (list, tuple)):
        return next((p for p in (literal_problem(v, depth + 1) for v in value) if p), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "a table whose keys are not all strings"
        return next((p for p in (literal_problem(v, depth + 1) for v in value.values()) if p), None)
    return f"{type(value).__name__} is not a literal"


_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _value(node: ast.AST) -> Any:
    """The value of a constant expression: a literal, or arithmetic on literals (``2**19``)."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        left, right = _value(node.left), _value(node.right)
        if isinstance(left, (int, float)) and isinstance(right, (int, float)) and (
                not isinstance(node.op, ast.Pow) or abs(right) < 1e4):  # no 10**10**9 bombs
            return _ARITH[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    raise ValueError("not a constant expression")


@functools.lru_cache(maxsize=64)
def assignments(source: str) -> dict[str, tuple[int, int, Any, bool]]:
    """Module-level ``NAME = value`` statements: name -> (start byte, end byte, value, known).

    A name assigned more than once maps to None (ambiguous: use replace instead).
    """
    tree = ast.parse(source)
    raw = source.encode()
    starts = [0] + [m.end() for m in re.finditer(rb"\n", raw)]
    table: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, node = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, node = stmt.target.id, stmt.value
        else:
            continue
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        try:
            value, known = _value(node), True
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            value, known = None, False
        table[name] = None if name in table else (begin, end, value, known)
    return table


def _compatible(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new)
    if isinstance(old, float) and isinstance(new, int):
        return True
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return True
    return type(old) is type(new)


def render(new: Any, old: Any, old_src: str) -> str:
    """Python source for `new`, in the old value's style (float stays float, tuple, quotes)."""
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        new = float(new)
    if isinstance(old, tuple) and isinstance(new, list):
        new = tuple(new)
    text = repr(new)
    if isinstance(new, float) and re.fullmatch(r"[-+]?[\d.]+[eE][-+]?\d+", old_src.strip()) and new != 0:
        text = exponent(new)  # 6e-4 -> 1e-3, not 0.001: the file's style
    if isinstance(new, str) and old_src.startswith('"') and '"' not in new and "'" not in new:
        text = '"' + text[1:-1] + '"'
    return text


def exponent(x: float) -> str:
    """The shortest exponent form that reads back as x: 0.001 -> 1e-3, 0.00015 -> 1.5e-4."""
    for digits in range(17):
        mantissa, power = f"{x:.{digits}e}".split("e")
        if float(f"{mantissa}e{power}") == x:
            return f"{mantissa}e{int(power)}"
    return repr(x)


def option_value(text: str) -> Any:
    """A --set value: TOML (0.06, 8, "silu", true), else a Python literal (True, None, 1e-3, (1, 2)),
    else the text itself as a string (a bare word such as silu)."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    except (ValueError, RecursionError):  # an integer of thousands of digits, brackets hundreds deep
        raise ValueError(f"--set value {text[:40]!r}...: too large or nested too deep (integers within ±2**63, "
                         "a few levels of lists)") from None
    try:
        value = ast.literal_eval(text)
        return list(value) if isinstance(value, tuple) else value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _unknown(name: str, table: dict, filename: str) -> PatchError:
    import difflib  # here: collecting hypotheses needs it only for a misspelt name

    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
    close += [n for n in table if n.lower() == name.lower() and n not in close]
    names = sorted(table)
    listed = ", ".join(names[:60]) + (f", and {len(names) - 60} more" if len(names) > 60 else "")
    hint = (f"did you mean {', '.join(close)}? " if close else "") + f"constants: {listed or 'none'}; " \
        "allow_new = true adds it"
    return PatchError(f"set.{name}: {filename} has no module-level constant {name} ({hint})", "set", name)


def apply_set(source: str, values: tuple[tuple[str, Any], ...], filename: str,
              allow_type_change: bool = False, allow_new: bool = False) -> tuple[str, list[tuple[str, str, str]]]:
    """Assign constants by name; returns the new source and (NAME, old source, new source).

    With `allow_new`, a name the file lacks is added at its end (``NAME = value``)."""
    try:
        table = assignments(source)
    except SyntaxError as exc:
        raise PatchError(f"{filename} does not parse ({exc.msg} at line {exc.lineno})", "set") from None
    raw = source.encode()
    edits, changes, added = [], [], []
    for name, new in values:
        if name not in table and allow_new:
            text = render(new, None, "")
            added.append(f"{name} = {text}")
            changes.append((name, "(new)", text))
            continue
        if name not in table:
            raise _unknown(name, table, filename)
        if table[name] is None:
            raise PatchError(f"set.{name}: {name} is assigned more than once in {filename} (use replace)", "set", name)
        begin, end, old, known = table[name]
        old_src = raw[begin:end].decode()
        if known and not allow_type_change and not _compatible(old, new):
            raise PatchError(f"set.{name}: type change from {type(old).__name__} ({old_src}) to "
                             f"{type(new).__name__} ({new!r}) (give a {type(old).__name__}, or set "
                             "allow_type_change = true)", "set", name)
        text = render(new, old if known else None, old_src)
        edits.append((begin, end, text.encode()))
        changes.append((name, old_src, text))
    for begin, end, text in sorted(edits, reverse=True):
        raw = raw[:begin] + text + raw[end:]
    if added:
        newline = b"\r\n" if b"\r\n" in raw else b"\n"
        raw += (b"" if not raw or raw.endswith(b"\n") else newline) + newline.join(a.encode() for a in added) + newline
    return raw.decode(), changes


_CONFIG_FORMATS = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".toml": "TOML"}


def _refuse_non_python(target: str, allow_new: bool, value: Any) -> None:
    """set writes Python: a YAML, JSON or TOML file is refused (keys edits those), and so is
    allow_new on any file that is not Python (its ``NAME = value`` line would break the file)."""
    suffix = target[target.rfind("."):].lower() if "." in target.rsplit("/", 1)[-1] else ""
    name = value[0][0] if value else None
    if suffix in _CONFIG_FORMATS:
        example = f'"{name}" = ...' if name else '"model.temperature" = 1.0'
        raise PatchError(f"set: {target} is a {_CONFIG_FORMATS[suffix]} file, and set assigns Python constants "
                         f"(use [keys] for YAML, JSON and TOML files: [keys] {example})", "set", name)
    if allow_new and suffix not in (".py", ".pyw", ".pyi", ""):
        raise PatchError(f"set: allow_new adds a Python line NAME = value, and {target} is not a Python file "
                         "(for YAML, JSON and TOML files use [keys]; otherwise replace or diff)", "allow_new")


class SetKind(PatchKind):
    """``[set] NAME = value``, ``patch.set(NAME=value)``; the value is ``((NAME, value), ...)``."""

    name = "set"
    fields = {"set": "table of module-level constants to assign, NAME = value"}
    legacy = True
    sweeps = True
    new_option = {"flags": ("--set",), "dest": "sets", "metavar": "NAME=VALUE",
                  "help": "a constant of the editable file to assign; VALUE is a TOML or Python value "
                          "(0.06, 8, \"silu\", true, True, None); a bare word is a string"}

    def parse(self, raw, fail):
        sets = raw.get("set", {})
        if not isinstance(sets, dict):
            raise fail("set must be a table of NAME = value", "set")
        for key, value in sets.items():
            if not isinstance(key, str) or not PYTHON_NAME.fullmatch(key):
                key = str(key)
                raise fail(f"set.{key[:40]!r}: not a Python name (a module-level constant, e.g. LR)", key)
            problem = literal_problem(value)
            if problem:
                raise fail(f"set.{key}: {problem} (allowed: {ALLOWED})", key)
        return tuple(sets.items()) or None

    def from_calls(self, calls):
        out: dict[str, Any] = {}
        for args, kwargs in calls:
            if args:
                raise TypeError("patch.set() takes NAME=value keyword arguments only (patch.set(LR=0.02))")
            out.update(kwargs)
        return out

    def from_new(self, values):
        out: dict[str, Any] = {}
        for item in values:
            if "=" not in item:
                raise ValueError(f"--set {item!r}: write NAME=VALUE, e.g. --set MATRIX_LR=0.06")
            key, value = item.split("=", 1)
            out[key.strip()] = option_value(value.strip())
        return out

    def claims(self, name, raw):
        return bool(PYTHON_NAME.fullmatch(name))

    def sweep(self, value, params):
        return {**(value or {}), **{k: v for k, v in params if PYTHON_NAME.fullmatch(k)}}

    def apply(self, value, h, result: PatchResult, editable, protected):
        target = result.target
        _refuse_non_python(target, h.allow_new, value)
        result.after[target], changes = apply_set(result.after[target], value, target, h.allow_type_change,
                                                  h.allow_new)
        result.changes += changes

    def describe(self, value, result):
        return [f"{n} {o} → {v}" for n, o, v in result.by_kind.get(self.name, ())]

    def key(self, value):
        return {"set": [list(pair) for pair in value or ()]}

    def parameters(self, texts):
        """Every module-level constant with a literal value, as its source text: ``LR`` in the
        first editable file, ``path:NAME`` in the others; a file that does not parse gives none."""
        out: dict[str, str] = {}
        for i, (path, source) in enumerate(texts.items()):
            if not path.endswith(".py"):
                continue
            try:
                table = assignments(source)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            raw = source.encode()
            for name, entry in table.items():
                if entry is None or not entry[3] or name.startswith("__"):
                    continue
                out[name if i == 0 else f"{path}:{name}"] = raw[entry[0]:entry[1]].decode(errors="replace")[:500]
        return out


SET = SetKind()
