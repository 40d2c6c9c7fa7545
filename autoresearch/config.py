"""Settings: ``[tool.autoresearch]`` in pyproject.toml, overridden by command-line options.

A plugin declares each setting once, with ``parser.addsetting``; it then exists both as an
ini key and as a flag, is listed by ``--help``, and is type-checked where it is read.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import unicodedata
from pathlib import Path
from typing import Any, Callable, NamedTuple

from autoresearch.checks import check_layout, inside, shown  # noqa: F401 (inside: path settings' check)
from autoresearch.errors import UsageError

TYPES: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "args": shlex.split,
                                          "amount": str,
                                          "list": lambda s: [x for x in s.split(",") if x]}


# Every number a setting holds is finite and inside a range, the setting's own or its type's: a
# budget of 1e308 s would make the derived timeout infinite, a repeats of 1e18 a session without end.
RANGES: dict[str, tuple[float, float]] = {"int": (0, 10**9), "float": (0.0, 1e6), "amount": (0.0, 1e9)}
MAX_TEXT = 4096  # characters in one string (PATH_MAX): a longer one is a mistake, and unreadable in an error
MAX_ITEMS = 1000  # entries in one list or table


class Setting(NamedTuple):
    """One setting, as a plugin declared it (a named tuple: immutable, and cheaper to define at
    start-up than a dataclass, whose module imports inspect and ast)."""

    name: str
    type: str  # str, int, float, bool, list (comma-separated on the command line), args (shell-style),
    # amount (a number in the metric's units, or a percentage such as "0.1%"), table (NAME = "text", ini only)
    # numbers (NAME = 1.0, ini only)
    default: Any
    help: str
    flags: tuple[str, ...]
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None  # returns what is wrong with a value, or None
    range: tuple[float, float] | None = None  # (lowest, highest), both allowed: int, float and amount only


class Parser:
    """Collects settings and flags from every plugin, then builds the argparse parser."""

    def __init__(self) -> None:
        self.settings: dict[str, Setting] = {}
        self._options: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []

    def addsetting(self, name: str, *flags: str, type: str = "str", default: Any = None, help: str,
                   choices: tuple[str, ...] | None = None, group: str = "run",
                   check: Callable[[Any], str | None] | None = None,
                   range: tuple[float, float] | None = None) -> None:
        """A setting read from ``[tool.autoresearch]`` and, if flags are given, the command line.

        `check`, given a value of the right type, returns what is wrong with it (or None): the
        setting is then refused at start-up, before anything runs. Whatever `check` says, a number
        (int, float, amount) must be finite and within `range`, by default its type's (RANGES), and
        a string must be printable text of at most MAX_TEXT characters; the range is added to `help`.
        """
        if name in self.settings:
            raise ValueError(f"setting {name!r} declared twice")
        if type in RANGES:
            range = range or RANGES[type]
            help = f"{help} (from {_number(range[0])} to {_number(range[1])})"
        elif range is not None:
            raise ValueError(f"setting {name!r}: only a number (int, float, amount) has a range")
        self.settings[name] = Setting(name, type, default, help, flags, choices, check, range)
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
    import tomllib  # here: a command that reads no settings (--help) starts without it

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("autoresearch", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.autoresearch] must be a table")
    return table


def _number(x: float) -> str:
    """A range's end as the help shows it: 1,000,000 rather than 1e+06."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if isinstance(value, dict):
        return [v for kv in value.items() for v in kv if isinstance(v, str)]
    return []


def _text_problem(setting: Setting, value: Any) -> str | None:
    """What makes a string setting's text unusable, whatever the setting: a control character (a NUL
    no program can receive, an escape that takes over the terminal, a line break that makes one
    line two), a lone surrogate (bytes that were not UTF-8), a huge text or list."""
    if isinstance(value, (list, dict)) and len(value) > MAX_ITEMS:
        return f"has {len(value):,} entries (at most {MAX_ITEMS:,})"
    for text in _strings(value):
        if len(text) > MAX_TEXT:
            return f"has a text of {len(text):,} characters (at most {MAX_TEXT:,})"
        bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")), None)
        if bad == "\0":
            return "has a NUL byte in an argument (no program can receive it)" if setting.type == "args" else \
                "has a NUL byte (plain printable text only)"
        if bad is not None:
            hint = "; a regular expression can say \\t or \\n" if bad in "\t\n" else ""
            return f"has the control character {bad!r} in {shown(text, 40)} (plain printable text only{hint})"
    return None


def _number_problem(setting: Setting, value: Any, finite_only: bool) -> str | None:
    """A number (an amount: its number, a percentage's too) that is not finite, or (unless `finite_only`)
    out of its range."""
    number = value
    if setting.type == "amount" and isinstance(value, str):
        try:
            number = float(value.strip().removesuffix("%"))
        except ValueError:
            return None  # not a number at all: the setting's own check says what is allowed
    if not isinstance(number, (int, float)) or isinstance(number, bool) or setting.range is None:
        return None
    low, high = setting.range
    if isinstance(number, float) and not math.isfinite(number):
        return f"must be a finite number, from {_number(low)} to {_number(high)}"
    if not finite_only and not low <= number <= high:
        return f"is out of range (from {_number(low)} to {_number(high)})"
    return None


def _check(setting: Setting, value: Any, where: str) -> Any:
    todo = next((v for v in _strings(value) if v.lstrip().startswith("TODO:")), None)  # as autoresearch init
    # writes them
    if todo is not None:
        raise UsageError(f"{where}: {setting.name} is still a TODO ({shown(todo)}); set it ({setting.help})")
    want = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "args": list,
            "amount": (int, float, str), "table": dict, "numbers": dict}[setting.type]
    if setting.type == "list" and isinstance(value, str):
        value = [value]
    if setting.type == "args" and isinstance(value, str) and "\0" not in value and len(value) <= MAX_TEXT:
        try:
            value = shlex.split(value)
        except ValueError as exc:  # an unclosed quote
            raise UsageError(f"{where}: {setting.name} = {shown(value)}: {exc} (a list of arguments, or one string "
                             "quoted as a shell would)") from None
    problem = _text_problem(setting, value)
    if problem:
        raise UsageError(f"{where}: {setting.name} {problem}")
    ok = isinstance(value, want) and not (setting.type in ("int", "float") and isinstance(value, bool))
    if setting.type in ("list", "args") and ok:
        ok = all(isinstance(v, str) for v in value)
    if setting.type == "table" and ok:
        ok = all(isinstance(v, str) for v in value.values())
    if setting.type == "numbers" and ok:  # a table of numbers: weights = {yield = 1.0}
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())
    if value is not None and not ok:
        kind = {"list": "a list of strings", "args": "a list of strings", "table": "a table of strings", "numbers": "a table of numbers",
                "int": "an int"}.get(setting.type, "a " + setting.type)
        raise UsageError(f"{where}: {setting.name} must be {kind}, got {shown(value)} ({setting.help})")
    if setting.choices and value is not None and value not in setting.choices:
        raise UsageError(f"{where}: {setting.name} = {shown(value)} is not allowed (allowed: "
                         f"{', '.join(setting.choices)})")
    if value is None:
        return None
    problem = _number_problem(setting, value, finite_only=True)  # no check ever sees an inf or a nan
    if problem:
        raise UsageError(f"{where}: {setting.name} = {shown(value)} {problem}")
    value = float(value) if setting.type == "float" else value
    problem = setting.check(value) if setting.check else None  # its own words first ("must be more than 0")
    if problem:
        problem = problem if len(problem) <= 300 else problem[:299] + "…"
        raise UsageError(f"{where}: {setting.name} = {shown(value)}: {problem} ({setting.help})")
    problem = _number_problem(setting, value, finite_only=False)
    if problem:
        raise UsageError(f"{where}: {setting.name} = {shown(value)} {problem}")
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
        check_layout(self)  # no two path settings on one place: before collection, which a state_dir could hide

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
