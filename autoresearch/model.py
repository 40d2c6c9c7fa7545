"""The hypothesis model shared by both file formats: the fields, their checks, sweeps and the key.

The Python decorator API lives in :mod:`autoresearch.decorator`; the patch kinds in :mod:`autoresearch.patches`.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field, replace
from dataclasses import fields as fields_of
from typing import Any, Callable

from autoresearch.errors import CollectError, ExpectationError
from autoresearch.names import METRIC, NAME_RULE, PYTHON_NAME, name_problem, slug  # noqa: F401 (slug: public here)
from autoresearch.patches import PatchKind, builtin_kinds

# the keys every hypothesis may have, besides its patch kinds' (see autoresearch.patches); in the
# order the unknown-key message lists them: the head, the kinds' tables, the tail, the kinds' options
HEAD_FIELDS = {
    "name": "identifier of the hypothesis (default: the file's stem)",
    "description": "one line: the commit subject and the results.tsv description",
    "hypothesis": "what you expect to happen and why (required)",
}
TAIL_FIELDS = {
    "expect": "table of metric = \"< baseline - 0.001\"-style expectations",
    "baseline": "\"best\" (the branch tip), \"initial\", or another hypothesis's name",
    "sweep": "table NAME = [values]: one hypothesis per value",
    "tags": "list of strings, matched by -k",
    "file": "the editable file that set and replace change (default: the first editable file); for keys, the "
            "YAML, JSON or TOML file (default: the only editable one)",
    "allow_type_change": "true to let set (or keys) change a constant's (or a key's) type",
    "allow_new": "true to let set add a constant the file lacks (at its end), or keys a key",
}
COMMON_FIELDS = {**HEAD_FIELDS, **TAIL_FIELDS}
RESERVED = {"best", "initial", "baseline"}  # names a baseline field means something else by
MAX_DESCRIPTION = 200  # characters: a commit subject, a results.tsv cell, a terminal line
MAX_TEXT = 20_000  # characters of hypothesis text (it goes into the commit message)
MAX_SWEEP = 1000  # hypotheses one sweep may make (the max_sweep setting; see collect)
_PLACEHOLDER = re.compile(r"\{(\w+)(?::([<>^]?[+-]?\d{0,2}(?:\.\d{1,2})?[eEfFgGd%]?))?\}")


def fields(kinds: tuple[PatchKind, ...] | None = None) -> dict[str, str]:
    """Every key a hypothesis may have, with its help, given the run's patch kinds."""
    kinds = kinds or builtin_kinds()
    tables = {k: h for kind in kinds for k, h in list(kind.fields.items())[:1]}
    options = {k: h for kind in kinds for k, h in list(kind.fields.items())[1:]}
    return {**HEAD_FIELDS, **tables, **TAIL_FIELDS, **options}


def unprintable(text: str, allow: str = "") -> str | None:
    """The first character of `text` a terminal, a TSV row or a commit message would not show as
    written (control characters, line and paragraph separators, lone surrogates), as its escape."""
    if text.isprintable():  # no control, separator, surrogate or format character at all: the usual case
        return None
    import unicodedata

    for c in text:
        if c in allow:
            continue
        # controls, line breaks, lone surrogates, and invisible format characters (bidi overrides and
        # isolates, zero-width spaces) that make text read otherwise than it is; a zero-width joiner stays
        if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or (unicodedata.category(c) == "Cf" and c not in "\u200d\u00ad"):
            return ascii(c)[1:-1]
    return None


def __getattr__(name: str) -> Any:
    """``FIELDS``, ``Replace`` and ``literal_problem``, where they were before patch kinds were modules."""
    if name == "FIELDS":
        return fields()
    if name == "Replace":
        from autoresearch.patches.replace import Replace
        return Replace
    if name == "literal_problem":
        from autoresearch.patches.set import literal_problem
        return literal_problem
    raise AttributeError(f"module 'autoresearch.model' has no attribute {name!r}")


# what the key hashed before patch kinds were modules: always, whatever the value (with the
# legacy kinds' entries, "set", "replace", "diff"); any other field only when it is not its default
_KEYED = ("name", "description", "hypothesis", "file", "expect", "baseline", "allow_type_change")
_NOT_KEYED = ("path", "line", "params", "tags", "patches")


@dataclass(frozen=True)
class Hypothesis:
    """One experiment to run: a patch to the editable files, an expectation, a baseline.

    `patches` holds ``(kind, value)`` for each patch kind it uses, in the registry's order."""

    name: str
    description: str
    hypothesis: str
    path: str  # the file it came from, relative to the project root ("" for the baseline)
    line: int = 1
    file: str | None = None
    expect: tuple[tuple[str, str], ...] = ()
    baseline: str = "best"
    tags: tuple[str, ...] = ()
    allow_type_change: bool = False
    allow_new: bool = False
    patches: tuple[tuple[PatchKind, Any], ...] = ()
    params: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @property
    def nodeid(self) -> str:
        return f"{self.path}::{self.name}" if self.path else self.name

    def patch(self, kind: str, default: Any = None) -> Any:
        """The value of one patch kind (``h.patch("set")``), or `default` when it does not use it."""
        return next((v for k, v in self.patches if k.name == kind), default)

    @property
    def set(self) -> tuple[tuple[str, Any], ...]:
        return self.patch("set", ())

    @property
    def replace(self) -> tuple:
        return self.patch("replace", ())

    @property
    def diff(self) -> str | None:
        return self.patch("diff")

    @functools.cached_property
    def key(self) -> str:
        """A hash of everything that determines the experiment: same content, same key (computed
        once: a hypothesis is frozen).

        Only what differs from the defaults counts, beyond what keys hashed before (see _KEYED),
        so that adding a field or a patch kind changes no existing key (tests/test_keys.py)."""
        content: dict[str, Any] = {k: getattr(self, k) for k in _KEYED}
        used = {kind.name: (kind, value) for kind, value in self.patches}
        for kind in builtin_kinds():  # the legacy kinds: hashed even when unused, as before (``"set": []``)
            if kind.legacy:
                content.update(kind.key(used.pop(kind.name, (kind, None))[1]))
        for kind, value in used.values():
            content.update(kind.key(value))
        for f in fields_of(type(self)):
            if f.name not in _KEYED and f.name not in _NOT_KEYED and getattr(self, f.name) != f.default:
                content[f.name] = getattr(self, f.name)
        blob = json.dumps(content, sort_keys=True, default=repr).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _strings(value: Any, depth: int = 0):
    """Every string in a value (keys included), to a depth that a set value may not exceed anyway."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)) and depth <= 32:
        for v in value:
            yield from _strings(v, depth + 1)
    elif isinstance(value, dict) and depth <= 32:
        for k, v in value.items():
            yield from _strings(k, depth + 1)
            yield from _strings(v, depth + 1)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


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
          locate: Callable[[str], int] | None = None, max_sweep: int | None = None,
          kinds: tuple[PatchKind, ...] | None = None) -> list[Hypothesis]:
    """Validate one raw hypothesis (a TOML table or the decorator's record); expand its sweep.

    `kinds` are the run's patch kinds (``autoresearch.patches.registry(config)``; the built-in
    ones when None): each reads its own keys."""
    kinds = kinds or builtin_kinds()

    def fail(msg: str, key: str | None = None) -> CollectError:
        return CollectError(path, locate(key) if locate and key else line, msg)

    allowed = fields(kinds)
    unknown = sorted(set(raw) - set(allowed), key=str)
    if unknown:
        raise fail(f"unknown key {str(unknown[0])[:40]!r} (allowed: {', '.join(allowed)})", str(unknown[0]))
    for key, value in raw.items():  # every string anywhere: Unicode text, which git and files can hold
        if not all(_encodes(text) for text in _strings(value)):
            raise fail(f"{key}: a string that is not Unicode text (a lone surrogate; write the character itself)", key)
    common = _texts(raw, default_name, fail)  # checked in the order written: texts, patches, expect, options
    parsed = [(kind, kind.parse(raw, fail)) for kind in kinds]
    common.update(_expectations(raw, common["name"], fail), **_options(raw, fail), path=path, line=line)
    sweep = raw.get("sweep", {})
    check_sweep(sweep, fail, max_sweep, lambda k: any(kind.sweeps and kind.claims(k, raw) for kind in kinds))
    if not sweep:
        return [Hypothesis(patches=tuple((k, v) for k, v in parsed if v is not None), **common)]
    out = []
    for params in combinations(sweep):
        swept = [(k, k.parse({**raw, k.name: k.sweep(raw.get(k.name), params)}, fail) if k.sweeps else v)
                 for k, v in parsed]
        h = parametrize(Hypothesis(patches=tuple((k, v) for k, v in swept if v is not None), **common), params)
        problem = description_problem(h.description)
        if problem:
            raise fail(f"{problem}, once the sweep's values are filled in ({h.name[:60]})", "description")
        if len(h.name) > 200:
            raise fail(f"the sweep makes a name of {len(h.name)} characters (at most 200): shorter values", "sweep")
        out.append(h)
    return out


def _texts(raw: dict[str, Any], default_name: str, fail: Callable[..., CollectError]) -> dict[str, Any]:
    """The name, hypothesis text and description of a raw hypothesis, checked."""
    name = raw.get("name", default_name)
    problem = name_problem(name)
    if problem:
        raise fail(f"name {str(name)[:40]!r} is not valid: {problem} ({NAME_RULE})", "name")
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
    return dict(name=name, description=description.strip(), hypothesis=text.strip())


def _expectations(raw: dict[str, Any], name: str, fail: Callable[..., CollectError]) -> dict[str, Any]:
    """The expectations and the baseline of a raw hypothesis, checked."""
    from autoresearch.expect import parse_expectation

    expect = raw.get("expect", {})
    if not isinstance(expect, dict) or not all(isinstance(v, str) for v in expect.values()):
        raise fail('expect must be a table of metric = "comparison" strings, e.g. val_bpb = "< baseline"', "expect")
    for metric, expr in expect.items():
        if not isinstance(metric, str) or not METRIC.fullmatch(metric):
            metric = str(metric)
            raise fail(f"expect.{metric[:40]!r}: not a metric name (letters, digits, '_', '.', '-', "
                       "as the log prints it: val_bpb)", metric)
        try:
            parse_expectation(expr)
        except ExpectationError as exc:
            raise fail(f"expect.{metric}: {exc}", metric) from None
    baseline = raw.get("baseline", "best")
    if not isinstance(baseline, str) or name_problem(baseline):
        raise fail('baseline must be "best", "initial", the name of another hypothesis or a commit hash', "baseline")
    if baseline == name:
        raise fail(f"baseline {baseline!r} is the hypothesis itself (name another hypothesis, \"best\" or "
                   "\"initial\")", "baseline")
    return dict(expect=tuple(expect.items()), baseline=baseline)


def _options(raw: dict[str, Any], fail: Callable[..., CollectError]) -> dict[str, Any]:
    """The tags, target file and the allow_* options of a raw hypothesis, checked."""
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and re.fullmatch(r"[\w.:+-]{1,50}", t) for t in tags):
        raise fail("tags must be a list of words (letters, digits, '_', '.', ':', '+', '-')", "tags")
    target = raw.get("file")
    if target is not None and not isinstance(target, str):
        raise fail("file must be a path string", "file")
    for option in ("allow_type_change", "allow_new"):
        if not isinstance(raw.get(option, False), bool):
            raise fail(f"{option} must be true or false", option)
    return dict(tags=tuple(tags), file=target, allow_type_change=raw.get("allow_type_change", False),
                allow_new=raw.get("allow_new", False))


def description_problem(description: str) -> str | None:
    """Why a description cannot be a commit subject and a results.tsv cell, or None."""
    bad = unprintable(description)
    if bad:
        return f"description has a control character or line break {bad} (one line of plain text: the commit subject)"
    if len(description) > MAX_DESCRIPTION:
        return f"description is {len(description):,} characters (at most {MAX_DESCRIPTION}: the commit subject)"
    return None


def check_sweep(sweep: Any, fail: Callable[..., CollectError], max_sweep: int | None = None,
                claimed: Callable[[str], bool] | None = None) -> None:
    """A sweep is a table of NAME = [value, ...], each value a literal, making at most `max_sweep` hypotheses.
    A NAME is a Python name (a constant), or one that `claimed` says a sweeping kind takes (``--flag``)."""
    from autoresearch.patches.set import literal_problem as set_literal_problem

    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise fail("sweep must be a table of NAME = [value, ...] with at least one value each", "sweep")
    for key, values in sweep.items():
        if not isinstance(key, str) or not (PYTHON_NAME.fullmatch(key) or (claimed and claimed(key))):
            raise fail(f"sweep.{str(key)[:40]!r}: not a Python name (a module-level constant, e.g. LR), a flag "
                       "(\"--learning-rate\") or a key of [overrides]", "sweep")
        for v in values:
            problem = set_literal_problem(v)
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
