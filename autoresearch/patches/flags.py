"""The command-line flags a Python script defines, read from its source with ``ast`` (never run):
argparse's ``add_argument`` calls, click's ``@click.option`` decorators and typer's function
parameters. ``init`` writes an example from them; the ``args`` kind checks names and choices
against them and shows a flag's default as the value a hypothesis changes.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """One flag: `name` as spelt without its dashes (``learning-rate``), its default (`source`: the
    text as written, "" when none), `kind` ("value", "bool" for presence, "list" for nargs) and choices."""

    name: str
    default: Any = None
    source: str = ""
    kind: str = "value"
    choices: tuple = ()


def _literal(node: ast.AST | None) -> tuple[Any, bool]:
    if node is None:
        return None, False
    try:
        return ast.literal_eval(node), True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, False


def _keywords(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _names(call: ast.Call) -> list[str]:
    """The option strings of a call (``"--lr"``, ``"--flag/--no-flag"``), without their dashes."""
    out = []
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-"):
            for part in arg.value.split("/"):
                part = part.strip()
                if part.startswith("-") and part.strip("-"):
                    out.append(part.lstrip("-"))
    return out


def _flag(source: str, names: list[str], kw: dict[str, ast.AST], default_node: ast.AST | None = None) -> list[Flag]:
    action, _ = _literal(kw.get("action"))
    nargs, _ = _literal(kw.get("nargs"))
    is_flag, _ = _literal(kw.get("is_flag"))
    node = kw.get("default", default_node)
    default, known = _literal(node)
    kind = "value"
    if action in ("store_true", "store_false") or is_flag:
        kind = "bool"
        if not known:
            default, known = action == "store_false", True
    elif nargs in ("+", "*") or (isinstance(nargs, int) and nargs > 1):
        kind = "list"
    elif isinstance(default, bool) and default_node is not None:  # typer: a bool parameter is a --flag
        kind = "bool"
    choices_node = kw.get("choices")
    typ = kw.get("type")
    if choices_node is None and isinstance(typ, ast.Call) and getattr(typ.func, "attr", getattr(typ.func, "id", "")) \
            == "Choice" and typ.args:  # click.Choice([...])
        choices_node = typ.args[0]
    choices, ok = _literal(choices_node)
    choices = tuple(choices) if ok and isinstance(choices, (list, tuple, set, frozenset)) else ()
    text = (ast.get_source_segment(source, node) or "") if node is not None and known else ""
    return [Flag(name, default if known else None, text, kind, choices) for name in names]


def _typer_params(source: str, fn: ast.FunctionDef) -> list[Flag]:
    out = []
    args = fn.args.args + fn.args.kwonlyargs
    defaults = [None] * (len(fn.args.args) - len(fn.args.defaults)) + list(fn.args.defaults) + list(fn.args.kw_defaults)
    for arg, default in zip(args, defaults):
        if default is None:
            continue
        if isinstance(default, ast.Call):
            called = getattr(default.func, "attr", getattr(default.func, "id", ""))
            if called == "Argument":
                continue
            if called == "Option":
                names = _names(default) or [arg.arg.replace("_", "-")]
                head = default.args[0] if default.args else None
                named = isinstance(head, ast.Constant) and str(head.value).startswith("-")
                first = None if named else head
                out += _flag(source, names, _keywords(default), first)
                continue
        out += _flag(source, [arg.arg.replace("_", "-")], {}, default)
    return out


@functools.lru_cache(maxsize=64)
def flags(source: str) -> dict[str, Flag]:
    """The flags `source` defines, by name as spelt (``{"learning-rate": Flag(...)}``); {} when it
    does not parse or defines none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    found: list[Flag] = []
    typer_fns: set[str] = set()
    functions: dict[str, ast.FunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if called == "add_argument" or (called == "option" and "click" in source):
                kw = _keywords(node)
                if any(isinstance(a, ast.Constant) and "/" in str(a.value) for a in node.args):
                    kw["is_flag"] = ast.Constant(True)  # click's --flag/--no-flag
                found += _flag(source, _names(node), kw)
            elif called == "run" and isinstance(node.func, ast.Attribute) and \
                    getattr(node.func.value, "id", "") == "typer" and node.args and isinstance(node.args[0], ast.Name):
                typer_fns.add(node.args[0].id)
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
            if "typer" in source and any(getattr(d.func if isinstance(d, ast.Call) else d, "attr", "") == "command"
                                         for d in node.decorator_list) and not any(
                    "click" in ast.dump(d) for d in node.decorator_list):
                typer_fns.add(node.name)
    for name in sorted(typer_fns):
        if name in functions:
            found += _typer_params(source, functions[name])
    return {f.name: f for f in found}


def all_flags(texts: dict[str, str]) -> dict[str, Flag]:
    """The flags of every Python file among `texts` (the editable files)."""
    out: dict[str, Flag] = {}
    for path, text in texts.items():
        if path.endswith(".py"):
            for name, f in flags(text).items():
                out.setdefault(name, f)
    return out
