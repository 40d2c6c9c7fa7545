"""Settings: ``[tool.autoresearch]`` in pyproject.toml, overridden by command-line options.

A plugin declares each setting once, with ``parser.addsetting``; it then exists both as an
ini key and as a flag, is listed by ``--help``, and is type-checked where it is read.
"""
from __future__ import annotations

import argparse
import os
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autoresearch.errors import UsageError

TYPES: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "args": shlex.split,
                                          "amount": str,
                                          "list": lambda s: [x for x in s.split(",") if x]}


@dataclass(frozen=True)
class Setting:
    name: str
    type: str  # str, int, float, bool, list (comma-separated on the command line), args (shell-style),
    # amount (a number in the metric's units, or a percentage such as "0.1%"), table (NAME = "text", ini only)
    default: Any
    help: str
    flags: tuple[str, ...]
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None  # returns what is wrong with a value, or None


class Parser:
    """Collects settings and flags from every plugin, then builds the argparse parser."""

    def __init__(self) -> None:
        self.settings: dict[str, Setting] = {}
        self._options: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []

    def addsetting(self, name: str, *flags: str, type: str = "str", default: Any = None, help: str,
                   choices: tuple[str, ...] | None = None, group: str = "run",
                   check: Callable[[Any], str | None] | None = None) -> None:
        """A setting read from ``[tool.autoresearch]`` and, if flags are given, the command line.

        `check`, given a value of the right type, returns what is wrong with it (or None): the
        setting is then refused at start-up, before anything runs.
        """
        if name in self.settings:
            raise ValueError(f"setting {name!r} declared twice")
        self.settings[name] = Setting(name, type, default, help, flags, choices, check)
        if flags:
            kwargs: dict[str, Any] = dict(dest=name, default=None, help=f"{help} [{name}, default: {default!r}]")
            if type == "bool":
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs.update(type=TYPES[type], metavar=name.upper())
                if choices:
                    kwargs["choices"] = choices
            self._options.append((group, flags, kwargs))

    def addoption(self, *flags: str, group: str = "run", **kwargs: Any) -> None:
        """A command-line-only option (argparse's add_argument arguments)."""
        self._options.append((group, flags, kwargs))

    def populate(self, argparser: argparse.ArgumentParser, only: set[str] | None = None) -> None:
        """Add the flags to a command's parser: all of them, or those of the settings named in `only`."""
        groups: dict[str, Any] = {}
        for group, flags, kwargs in self._options:
            if only is not None and kwargs.get("dest") not in only:
                continue
            if group not in groups:
                groups[group] = argparser.add_argument_group(f"{group} options")
            groups[group].add_argument(*flags, **kwargs)


def inside(value: Any) -> str | None:
    """A `check` for paths in the project: relative, below its root, never into .git."""
    for path in (value if isinstance(value, list) else [value]):
        parts = Path(path).parts
        if not path or "\0" in path or Path(path).is_absolute() or ".." in parts or (parts and parts[0] == ".git"):
            return f"{path!r} must be a path inside the project (relative, no .., not in .git)"
    return None


def positive(value: Any) -> str | None:
    """A `check` for settings that must be more than zero (a budget, a timeout, a count)."""
    return None if value > 0 else "must be more than 0"


def not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def find_rootdir(start: Path) -> Path:
    """The nearest folder, from `start` up, holding pyproject.toml or .git."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return start


def read_ini(rootdir: Path) -> dict[str, Any]:
    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("autoresearch", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.autoresearch] must be a table")
    return table


def _check(setting: Setting, value: Any, where: str) -> Any:
    todo = next((v for v in (value if isinstance(value, list) else list(value.values()) if isinstance(value, dict)
                             else [value]) if isinstance(v, str)
                 and v.lstrip().startswith("TODO:")), None)  # as autoresearch init writes them
    if todo is not None:
        raise UsageError(f"{where}: {setting.name} is still a TODO ({todo!r}); set it ({setting.help})")
    want = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "args": list,
            "amount": (int, float, str), "table": dict}[setting.type]
    if setting.type == "list" and isinstance(value, str):
        value = [value]
    if setting.type == "args" and isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:  # an unclosed quote
            raise UsageError(f"{where}: {setting.name} = {value!r}: {exc} (a list of arguments, or one string "
                             "quoted as a shell would)") from None
    if setting.type == "args" and isinstance(value, list) and any(isinstance(v, str) and "\0" in v for v in value):
        raise UsageError(f"{where}: {setting.name} has a NUL byte in an argument (no program can receive it)")
    ok = isinstance(value, want) and not (setting.type in ("int", "float") and isinstance(value, bool))
    if setting.type in ("list", "args") and ok:
        ok = all(isinstance(v, str) for v in value)
    if setting.type == "table" and ok:
        ok = all(isinstance(v, str) for v in value.values())
    if value is not None and not ok:
        kind = {"list": "a list of strings", "args": "a list of strings", "table": "a table of strings"}.get(
            setting.type, "a " + setting.type)
        raise UsageError(f"{where}: {setting.name} must be {kind}, "
                         f"got {value!r} ({setting.help})")
    if setting.choices and value is not None and value not in setting.choices:
        raise UsageError(f"{where}: {setting.name} = {value!r} is not allowed (allowed: {', '.join(setting.choices)})")
    value = float(value) if setting.type == "float" and value is not None else value
    problem = setting.check(value) if setting.check and value is not None else None
    if problem:
        raise UsageError(f"{where}: {setting.name} = {value!r}: {problem} ({setting.help})")
    return value


class Config:
    """What every hook receives: the root folder, the settings, the plugin manager."""

    def __init__(self, rootdir: Path, pluginmanager: Any, parser: Parser, option: argparse.Namespace) -> None:
        self.rootdir = rootdir
        self.pluginmanager = pluginmanager
        self.hook = pluginmanager.hook
        self.option = option
        self._settings = parser.settings
        self.ini = read_ini(rootdir)
        unknown = sorted(set(self.ini) - set(self._settings))
        if unknown:
            raise UsageError(f"{rootdir / 'pyproject.toml'}: [tool.autoresearch] has unknown key {unknown[0]!r} "
                             f"(allowed: {', '.join(sorted(self._settings))})")
        self._values = {name: self._resolve(s) for name, s in self._settings.items()}
        norm = lambda names: {os.path.normpath(n) for n in names or ()}  # noqa: E731  ./train.py is train.py
        both = sorted(norm(self._values.get("editable")) & norm(self._values.get("protected")))
        if both:
            raise UsageError(f"{rootdir / 'pyproject.toml'} [tool.autoresearch]: {both[0]} is both editable and "
                             "protected (a file hypotheses may change cannot also be one they must never change)")

    def _resolve(self, s: Setting) -> Any:
        cli = getattr(self.option, s.name, None)
        if cli is not None:
            return _check(s, cli, "command line")
        if s.name in self.ini:
            return _check(s, self.ini[s.name], f"{self.rootdir / 'pyproject.toml'} [tool.autoresearch]")
        return s.default

    def get(self, name: str, default: Any = None) -> Any:
        """A setting's value: command line, else pyproject.toml, else its default.

        `default` is returned only for a setting no loaded plugin declares (its plugin blocked).
        """
        return self._values[name] if name in self._values else default

    def settings(self) -> dict[str, Any]:
        """Every setting's value, by name (what a run ran with)."""
        return dict(self._values)

    def getoption(self, name: str, default: Any = None) -> Any:
        """A command-line-only option's value."""
        return getattr(self.option, name, default)

    @property
    def state_dir(self) -> Path:
        return self.rootdir / self.get("state_dir")

    @property
    def editable(self) -> list[str]:
        return list(self.get("editable"))

    @property
    def protected(self) -> list[str]:
        return list(self.get("protected"))
