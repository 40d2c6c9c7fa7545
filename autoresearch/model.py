"""The hypothesis model shared by both file formats, and the Python decorator API."""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from autoresearch.errors import CollectError, ExpectationError

FIELDS = {
    "name": "identifier of the hypothesis (default: the file's stem)",
    "description": "one line: the commit subject and the results.tsv description",
    "hypothesis": "what you expect to happen and why (required)",
    "set": "table of module-level constants to assign, NAME = value",
    "replace": "list of {old, new} tables: exact text that must occur exactly once",
    "diff": "a unified diff of the editable files",
    "expect": "table of metric = \"< baseline - 0.001\"-style expectations",
    "baseline": "\"best\" (the branch tip), \"initial\", or another hypothesis's name",
    "sweep": "table NAME = [values]: one hypothesis per value",
    "tags": "list of strings, matched by -k",
    "file": "the editable file that set and replace change (default: the first editable file)",
    "allow_type_change": "true to let set change a constant's type",
    "allow_new": "true to let set add a constant the file lacks (at its end)",
}
LITERAL_TYPES = (bool, int, float, str, list, tuple, dict, type(None))
RESERVED = {"best", "initial", "baseline"}  # names a baseline field means something else by
MAX_DESCRIPTION = 200  # characters: a commit subject, a results.tsv cell, a terminal line
MAX_TEXT = 20_000  # characters of hypothesis text (it goes into the commit message)
MAX_DEPTH = 32  # nesting of lists and tables in a set value
MAX_INT = 2 ** 63  # an integer constant beyond this is a mistake, not a hyperparameter
MAX_SWEEP = 1000  # hypotheses one sweep may make (the max_sweep setting; see collect)
_PLACEHOLDER = re.compile(r"\{(\w+)(?::([<>^]?[+-]?\d{0,2}(?:\.\d{1,2})?[eEfFgGd%]?))?\}")


def unprintable(text: str, allow: str = "") -> str | None:
    """The first character of `text` a terminal, a TSV row or a commit message would not show as
    written (control characters, line and paragraph separators, lone surrogates), as its escape."""
    import unicodedata

    for c in text:
        if c in allow:
            continue
        # controls, line breaks, lone surrogates, and invisible format characters (bidi overrides and
        # isolates, zero-width spaces) that make text read otherwise than it is; a zero-width joiner stays
        if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or (unicodedata.category(c) == "Cf" and c not in "\u200d\u00ad"):
            return ascii(c)[1:-1]
    return None


@dataclass(frozen=True)
class Replace:
    old: str
    new: str


@dataclass(frozen=True)
class Hypothesis:
    """One experiment to run: a patch to the editable file, an expectation, a baseline."""

    name: str
    description: str
    hypothesis: str
    path: str  # the file it came from, relative to the project root ("" for the baseline)
    line: int = 1
    file: str | None = None
    set: tuple[tuple[str, Any], ...] = ()
    replace: tuple[Replace, ...] = ()
    diff: str | None = None
    expect: tuple[tuple[str, str], ...] = ()
    baseline: str = "best"
    tags: tuple[str, ...] = ()
    allow_type_change: bool = False
    allow_new: bool = False
    params: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @property
    def nodeid(self) -> str:
        return f"{self.path}::{self.name}" if self.path else self.name

    @property
    def key(self) -> str:
        """A hash of everything that determines the experiment: same content, same key."""
        content = {k: v for k, v in asdict(self).items() if k not in ("path", "line", "params", "tags")
                   and not (k == "allow_new" and not v)}  # the same key as before allow_new existed
        blob = json.dumps(content, sort_keys=True, default=repr).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


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
        return None if _encodes(value) else "a string that is not Unicode text (a lone surrogate)"
    if isinstance(value, (list, tuple)):
        return next((p for p in (literal_problem(v, depth + 1) for v in value) if p), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "a table whose keys are not all strings"
        return next((p for p in (literal_problem(v, depth + 1) for v in value.values()) if p), None)
    return f"{type(value).__name__} is not a literal"


def _strings(value: Any, depth: int = 0):
    """Every string in a value (keys included), to a depth that a set value may not exceed anyway."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)) and depth <= MAX_DEPTH:
        for v in value:
            yield from _strings(v, depth + 1)
    elif isinstance(value, dict) and depth <= MAX_DEPTH:
        for k, v in value.items():
            yield from _strings(k, depth + 1)
            yield from _strings(v, depth + 1)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def slug(name: str) -> str:
    """A name as it appears in file names and git refs: letters, digits, '_' and '-' (``lr[0.02]`` -> ``lr-0-02``).

    One rule for the experiment's log (``003-lr-0-02.log``) and its ref (``refs/autoresearch/TAG/003-lr-0-02``).
    """
    return re.sub(r"[^A-Za-z0-9_]+", "-", name)[:60].strip("-") or "x"


def combinations(sweep: dict[str, list]) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of a sweep's values, as ``((NAME, value), ...)``, in the order written."""
    keys = list(sweep)
    return [tuple(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))]


def parametrize(h: Hypothesis, params: tuple[tuple[str, Any], ...]) -> Hypothesis:
    """One hypothesis of a sweep, named as pytest names parametrized tests: ``name[v1-v2]``.

    ``{NAME}`` placeholders in the description are filled in, or ``(NAME=value)`` is appended.
    """
    name = f"{h.name}[{'-'.join(str(v) for _, v in params)}]"
    values = dict(params)

    def fill(m: re.Match) -> str:  # {NAME} or {NAME:.3g}: widths of two digits at most, nothing else
        if m.group(1) not in values:
            return m.group(0)
        try:
            return format(values[m.group(1)], m.group(2) or "")
        except (ValueError, TypeError):
            return str(values[m.group(1)])

    import string

    try:  # str.format, as always (the same descriptions, the same hypothesis keys), unless a width is a bomb
        specs = [spec for _, field, spec, _ in string.Formatter().parse(h.description) if field is not None]
        if any(int(w) > 99 for spec in specs for w in re.findall(r"\d+", spec or "")):
            raise ValueError("a width of more than two digits")
        formatted = h.description.format(**values)
    except ValueError:
        formatted = _PLACEHOLDER.sub(fill, h.description)
    except (KeyError, IndexError, AttributeError, TypeError):
        formatted = h.description
    if formatted == h.description:
        formatted = f"{h.description} ({', '.join(f'{k}={v}' for k, v in params)})"
    return replace(h, name=name, description=formatted, params=params)


def build(raw: dict[str, Any], path: str, line: int, default_name: str,
          locate: Callable[[str], int] | None = None, max_sweep: int | None = None) -> list[Hypothesis]:
    """Validate one raw hypothesis (a TOML table or the decorator's record); expand its sweep."""
    from autoresearch.expect import parse_expectation

    def fail(msg: str, key: str | None = None) -> CollectError:
        return CollectError(path, locate(key) if locate and key else line, msg)

    unknown = sorted(set(raw) - set(FIELDS), key=str)
    if unknown:
        raise fail(f"unknown key {str(unknown[0])[:40]!r} (allowed: {', '.join(FIELDS)})", str(unknown[0]))
    for key, value in raw.items():  # every string anywhere: Unicode text, which git and files can hold
        if not all(_encodes(text) for text in _strings(value)):
            raise fail(f"{key}: a string that is not Unicode text (a lone surrogate; write the character itself)", key)
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", name) or not name.strip("_-"):
        raise fail(f"name {str(name)[:40]!r} is not valid (1 to 100 letters, digits, '_' and '-')", "name")
    if name in RESERVED:
        raise fail(f"name {name!r} is reserved (a baseline of \"best\" or \"initial\" means the branch tip or the "
                   "unmodified code; choose another name)", "name")
    text = raw.get("hypothesis")
    if not isinstance(text, str) or not text.strip():
        raise fail("no hypothesis text: say what you expect to happen and why "
                   "(hypothesis = \"...\"; for Python, a docstring)", "hypothesis")
    bad = unprintable(text, "\t\n")
    if bad or len(text) > MAX_TEXT:
        raise fail(f"hypothesis text has a control character {bad} (plain text and newlines only)" if bad else
                   f"hypothesis text is {len(text):,} characters (at most {MAX_TEXT:,})", "hypothesis")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise fail("no description (description = \"one line: the commit subject\")", "description")
    problem = description_problem(description)
    if problem:
        raise fail(problem, "description")
    sets = raw.get("set", {})
    if not isinstance(sets, dict):
        raise fail("set must be a table of NAME = value", "set")
    for key, value in sets.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_]\w{0,99}", key):
            key = str(key)
            raise fail(f"set.{key[:40]!r}: not a Python name (a module-level constant, e.g. LR)", key)
        problem = literal_problem(value)
        if problem:
            raise fail(f"set.{key}: {problem} (allowed: finite numbers, integers within ±2**63, strings, booleans, "
                       "lists and tables of them)", key)
    replaces = raw.get("replace", [])
    if isinstance(replaces, dict):
        replaces = [replaces]
    if not isinstance(replaces, list) or not all(
            isinstance(r, dict) and set(r) == {"old", "new"} and all(isinstance(v, str) for v in r.values())
            for r in replaces):
        raise fail("replace must be a list of tables with exactly the string keys old and new", "replace")
    if any(not r["old"] for r in replaces):
        raise fail("replace.old is empty (give the exact text to replace)", "replace")
    diff = raw.get("diff")
    if diff is not None and (not isinstance(diff, str) or not diff.strip()):
        raise fail("diff must be a non-empty string holding a unified diff", "diff")
    expect = raw.get("expect", {})
    if not isinstance(expect, dict) or not all(isinstance(v, str) for v in expect.values()):
        raise fail('expect must be a table of metric = "comparison" strings, e.g. val_bpb = "< baseline"', "expect")
    for metric, expr in expect.items():
        if not isinstance(metric, str) or not re.fullmatch(r"[A-Za-z_][\w.-]{0,99}", metric):
            metric = str(metric)
            raise fail(f"expect.{metric[:40]!r}: not a metric name (letters, digits, '_', '.', '-', "
                       "as the log prints it: val_bpb)", metric)
        try:
            parse_expectation(expr)
        except ExpectationError as exc:
            raise fail(f"expect.{metric}: {exc}", metric) from None
    baseline = raw.get("baseline", "best")
    if not isinstance(baseline, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", baseline):
        raise fail('baseline must be "best", "initial", the name of another hypothesis or a commit hash', "baseline")
    if baseline == name:
        raise fail(f"baseline {baseline!r} is the hypothesis itself (name another hypothesis, \"best\" or "
                   "\"initial\")", "baseline")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and re.fullmatch(r"[\w.:+-]{1,50}", t) for t in tags):
        raise fail("tags must be a list of words (letters, digits, '_', '.', ':', '+', '-')", "tags")
    target = raw.get("file")
    if target is not None and not isinstance(target, str):
        raise fail("file must be a path string", "file")
    allow = raw.get("allow_type_change", False)
    if not isinstance(allow, bool):
        raise fail("allow_type_change must be true or false", "allow_type_change")
    allow_new = raw.get("allow_new", False)
    if not isinstance(allow_new, bool):
        raise fail("allow_new must be true or false", "allow_new")
    sweep = raw.get("sweep", {})
    check_sweep(sweep, fail, max_sweep)

    common = dict(hypothesis=text.strip(), path=path, line=line, file=target,
                  replace=tuple(Replace(r["old"], r["new"]) for r in replaces), diff=diff,
                  expect=tuple(expect.items()), baseline=baseline, tags=tuple(tags),
                  allow_type_change=allow, allow_new=allow_new)
    if not sweep:
        return [Hypothesis(name=name, description=description.strip(), set=tuple(sets.items()), **common)]
    out = []
    for params in combinations(sweep):
        h = parametrize(Hypothesis(name=name, description=description.strip(),
                                   set=tuple({**sets, **dict(params)}.items()), **common), params)
        problem = description_problem(h.description)
        if problem:
            raise fail(f"{problem}, once the sweep's values are filled in ({h.name[:60]})", "description")
        if len(h.name) > 200:
            raise fail(f"the sweep makes a name of {len(h.name)} characters (at most 200): shorter values", "sweep")
        out.append(h)
    return out


def description_problem(description: str) -> str | None:
    """Why a description cannot be a commit subject and a results.tsv cell, or None."""
    bad = unprintable(description)
    if bad:
        return f"description has a control character or line break {bad} (one line of plain text: the commit subject)"
    if len(description) > MAX_DESCRIPTION:
        return f"description is {len(description):,} characters (at most {MAX_DESCRIPTION}: the commit subject)"
    return None


def check_sweep(sweep: Any, fail: Callable[..., CollectError], max_sweep: int | None = None) -> None:
    """A sweep is a table of NAME = [value, ...], each value a literal, making at most `max_sweep` hypotheses."""
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise fail("sweep must be a table of NAME = [value, ...] with at least one value each", "sweep")
    for key, values in sweep.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_]\w{0,99}", key):
            raise fail(f"sweep.{str(key)[:40]!r}: not a Python name (a module-level constant, e.g. LR)", "sweep")
        for v in values:
            problem = literal_problem(v)
            if problem:
                raise fail(f"sweep.{key}: {problem} (allowed: finite numbers, strings, booleans, lists, tables)", key)
            bad = unprintable(str(v)) if isinstance(v, (str, list, dict)) else None
            if bad or len(str(v)) > 100:  # a sweep value names the hypothesis: one short line of text
                raise fail(f"sweep.{key}: a value with a control character or line break {bad} (plain text)" if bad
                           else f"sweep.{key}: a value of {len(str(v))} characters (at most 100: it names the "
                           "hypothesis)", key)
    count = math.prod(len(v) for v in sweep.values())
    limit = max_sweep or MAX_SWEEP
    if count > limit:
        raise fail(f"sweep makes {count:,} hypotheses (at most {limit:,}: the max_sweep setting)", "sweep")


# -------------------------------------------------------------------------------------------
# The Python API


class Patch:
    """What a Python hypothesis function receives: it records the changes to make."""

    def __init__(self) -> None:
        self.sets: dict[str, Any] = {}
        self.replaces: list[dict[str, str]] = []
        self.diffs: list[str] = []

    def set(self, **constants: Any) -> None:
        """Assign module-level constants of the editable file: ``patch.set(DEPTH=6)``."""
        self.sets.update(constants)

    def replace(self, old: str, new: str) -> None:
        """Replace exact text that must occur exactly once."""
        self.replaces.append({"old": old, "new": new})

    def diff(self, text: str) -> None:
        """Apply a unified diff to the editable files."""
        self.diffs.append(text)


def hypothesis(description: str | Callable | None = None, *, name: str | None = None,
               expect: dict[str, str] | None = None, baseline: str = "best",
               sweep: dict[str, list] | None = None, tags: tuple[str, ...] | list[str] = (),
               file: str | None = None, allow_type_change: bool = False, allow_new: bool = False) -> Any:
    """Mark a function as a hypothesis; its docstring is the hypothesis text.

    The function receives a :class:`Patch` (and, for a sweep, each swept name as a keyword
    argument when it accepts one) and records its changes on it::

        @hypothesis(description="SiLU in the MLP", expect={"val_bpb": "< baseline"})
        def silu(patch):
            '''SiLU keeps small negative activations; expect a slightly lower loss.'''
            patch.set(ACTIVATION="silu")
    """
    if callable(description):  # used bare: @hypothesis
        return hypothesis()(description)

    def mark(fn: Callable) -> Callable:
        fn.__autoresearch_hypothesis__ = dict(  # type: ignore[attr-defined]
            description=description, name=name or getattr(fn, "__name__", None), expect=dict(expect or {}),
            baseline=baseline, sweep=sweep if sweep is not None else {}, tags=list(tags) if isinstance(tags, (list, tuple))
            else tags, file=file,
            allow_type_change=allow_type_change, allow_new=allow_new)
        return fn

    return mark


def safe_text(exc: BaseException) -> str:
    """An exception's message as one printable line of at most 300 characters, whatever it holds."""
    from autoresearch.reports import printable

    try:
        text = str(exc)
    except Exception:  # a __str__ that raises
        text = "(its message could not be read)"
    return printable(text.replace("\n", " "))[:300]


def from_function(fn: Callable, path: str, max_sweep: int | None = None) -> list[Hypothesis]:
    """Turn a decorated function into hypotheses, calling it once per sweep combination; whatever
    the function or its decorator's arguments do wrong is a :class:`CollectError` at its line."""
    line = getattr(getattr(fn, "__code__", None), "co_firstlineno", 1)
    try:
        return _from_function(fn, path, max_sweep)
    except CollectError:
        raise
    except (Exception, SystemExit, GeneratorExit) as exc:  # the user's code, or arguments of the wrong kind
        name = getattr(fn, "__name__", "the function")
        raise CollectError(path, line, f"@hypothesis {name}: {type(exc).__name__}: {safe_text(exc)} (decorate a "
                                       "plain function def name(patch): with data arguments)") from None


def _from_function(fn: Callable, path: str, max_sweep: int | None = None) -> list[Hypothesis]:
    import inspect

    meta = dict(fn.__autoresearch_hypothesis__)  # type: ignore[attr-defined]
    code = getattr(fn, "__code__", None)
    line = code.co_firstlineno if code else 1
    if code is None and inspect.isclass(fn):
        try:
            line = inspect.getsourcelines(fn)[1]
        except (OSError, TypeError):
            pass
    what = ("a class" if inspect.isclass(fn) else "an async function" if inspect.iscoroutinefunction(fn)
            else "a generator" if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
            else None if inspect.isfunction(fn) else type(fn).__name__)
    if what:
        raise CollectError(path, line, f"@hypothesis decorates {what} (decorate a plain function "
                                       "def name(patch): that calls patch.set, patch.replace or patch.diff)")
    sweep = meta.pop("sweep")
    check_sweep(sweep, lambda msg, key=None: CollectError(path, line, msg), max_sweep)
    doc = inspect.getdoc(fn) or ""
    raw = {k: v for k, v in meta.items() if v is not None}
    raw["hypothesis"] = doc
    if raw.get("description") is None:
        raw["description"] = doc.splitlines()[0] if doc else None
    accepted = inspect.signature(fn).parameters
    out = []
    for params in combinations(sweep) if sweep else [()]:
        patch = Patch()
        try:
            fn(patch, **{k: v for k, v in params if k in accepted})
        except (Exception, SystemExit, GeneratorExit) as exc:  # the user's code: report where, not a traceback
            raise CollectError(path, line, f"{fn.__name__}() raised {type(exc).__name__}: {safe_text(exc)}") from None
        if not isinstance(patch.sets, dict) or not isinstance(patch.replaces, list) or not isinstance(patch.diffs, list):
            raise CollectError(path, line, f"{fn.__name__}() replaced the patch's own records (call patch.set, "
                                           "patch.replace and patch.diff; do not assign to them)")
        if len(patch.diffs) > 1:
            raise CollectError(path, line, "call patch.diff() at most once (one unified diff per hypothesis)")
        one = dict(raw, set={**patch.sets, **dict(params)}, replace=patch.replaces)
        if patch.diffs:
            one["diff"] = patch.diffs[0]
        (h,) = build(one, path, line, fn.__name__, max_sweep=max_sweep)
        if sweep:
            h = parametrize(h, params)
            problem = description_problem(h.description)
            if problem:
                raise CollectError(path, line, f"{problem}, once the sweep's values are filled in ({h.name})")
        out.append(h)
    return out
