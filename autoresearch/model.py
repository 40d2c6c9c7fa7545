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
}
LITERAL_TYPES = (bool, int, float, str, list, tuple, dict, type(None))


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
    params: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @property
    def nodeid(self) -> str:
        return f"{self.path}::{self.name}" if self.path else self.name

    @property
    def key(self) -> str:
        """A hash of everything that determines the experiment: same content, same key."""
        content = {k: v for k, v in asdict(self).items() if k not in ("path", "line", "params", "tags")}
        blob = json.dumps(content, sort_keys=True, default=repr).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _check_literal(value: Any) -> bool:
    """A value `set` can write as Python source: literals only, and no nan or inf (not literals)."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, (list, tuple)):
        return all(_check_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _check_literal(v) for k, v in value.items())
    return isinstance(value, LITERAL_TYPES)


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
    try:
        formatted = h.description.format(**dict(params))
    except (KeyError, IndexError, ValueError, AttributeError):
        formatted = h.description
    if formatted == h.description:
        formatted = f"{h.description} ({', '.join(f'{k}={v}' for k, v in params)})"
    return replace(h, name=name, description=formatted, params=params)


def build(raw: dict[str, Any], path: str, line: int, default_name: str,
          locate: Callable[[str], int] | None = None) -> list[Hypothesis]:
    """Validate one raw hypothesis (a TOML table or the decorator's record); expand its sweep."""
    from autoresearch.expect import parse_expectation

    def fail(msg: str, key: str | None = None) -> CollectError:
        return CollectError(path, locate(key) if locate and key else line, msg)

    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(FIELDS)})", unknown[0])
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise fail(f"name {name!r} is not valid (letters, digits, '_' and '-')", "name")
    text = raw.get("hypothesis")
    if not isinstance(text, str) or not text.strip():
        raise fail("no hypothesis text: say what you expect to happen and why "
                   "(hypothesis = \"...\"; for Python, a docstring)", "hypothesis")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise fail("no description (description = \"one line: the commit subject\")", "description")
    if any(c in description for c in "\t\r\n"):
        raise fail("description must be one line without tabs (it is the commit subject)", "description")
    sets = raw.get("set", {})
    if not isinstance(sets, dict):
        raise fail("set must be a table of NAME = value", "set")
    for key, value in sets.items():
        if not _check_literal(value):
            raise fail(f"set.{key}: {type(value).__name__} is not a literal "
                       "(allowed: finite numbers, strings, booleans, lists, tables)", key)
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
        try:
            parse_expectation(expr)
        except ExpectationError as exc:
            raise fail(f"expect.{metric}: {exc}", metric) from None
    baseline = raw.get("baseline", "best")
    if not isinstance(baseline, str) or not baseline:
        raise fail('baseline must be "best", "initial" or the name of another hypothesis', "baseline")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise fail("tags must be a list of strings", "tags")
    target = raw.get("file")
    if target is not None and not isinstance(target, str):
        raise fail("file must be a path string", "file")
    allow = raw.get("allow_type_change", False)
    if not isinstance(allow, bool):
        raise fail("allow_type_change must be true or false", "allow_type_change")
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise fail("sweep must be a table of NAME = [value, ...] with at least one value each", "sweep")

    common = dict(hypothesis=text.strip(), path=path, line=line, file=target,
                  replace=tuple(Replace(r["old"], r["new"]) for r in replaces), diff=diff,
                  expect=tuple(expect.items()), baseline=baseline, tags=tuple(tags),
                  allow_type_change=allow)
    if not sweep:
        return [Hypothesis(name=name, description=description.strip(), set=tuple(sets.items()), **common)]
    out = []
    for params in combinations(sweep):
        for k, v in params:
            if not _check_literal(v):
                raise fail(f"sweep.{k}: {type(v).__name__} is not a literal", k)
        h = Hypothesis(name=name, description=description.strip(), set=tuple({**sets, **dict(params)}.items()), **common)
        out.append(parametrize(h, params))
    return out


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
               file: str | None = None, allow_type_change: bool = False) -> Any:
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
            description=description, name=name or fn.__name__, expect=dict(expect or {}),
            baseline=baseline, sweep=dict(sweep or {}), tags=list(tags), file=file,
            allow_type_change=allow_type_change)
        return fn

    return mark


def from_function(fn: Callable, path: str) -> list[Hypothesis]:
    """Turn a decorated function into hypotheses, calling it once per sweep combination."""
    import inspect

    meta = dict(fn.__autoresearch_hypothesis__)  # type: ignore[attr-defined]
    line = fn.__code__.co_firstlineno
    sweep = meta.pop("sweep")
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
        except Exception as exc:  # the user's code: report where, not a traceback
            raise CollectError(path, line, f"{fn.__name__}() raised {type(exc).__name__}: {exc}") from None
        if len(patch.diffs) > 1:
            raise CollectError(path, line, "call patch.diff() at most once (one unified diff per hypothesis)")
        one = dict(raw, set={**patch.sets, **dict(params)}, replace=patch.replaces)
        if patch.diffs:
            one["diff"] = patch.diffs[0]
        (h,) = build(one, path, line, fn.__name__)
        out.append(parametrize(h, params) if sweep else h)
    return out
