"""Patch kinds: what a hypothesis changes, one module per kind, behind one small interface.

A kind (:class:`PatchKind`) reads its keys from a hypothesis' table (TOML) or its calls on the
Python API's ``patch`` object, checks them as data at collection, applies them to the editable
files' texts, describes them for ``--collect-only`` and names the parameters it changes for the
journal, reports and MLflow. ``set``, ``replace``, ``diff``, ``keys``, ``args`` and ``overrides``
are the built-in kinds (:mod:`.set`, :mod:`.replace`, :mod:`.diff`, :mod:`.keys`, :mod:`.args`); a plugin adds one by returning it from the
``autoresearch_patch_kinds`` hook, and nothing else in the runner changes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from autoresearch.errors import CollectError, PatchError

# NB: once the submodule autoresearch.patches.set is imported, the name `set` in this module is
# that submodule, not the builtin: this module writes sets as {*...} displays only.

if TYPE_CHECKING:
    from autoresearch.model import Hypothesis


@dataclass
class PatchResult:
    """The editable files before and after a patch, and what changed."""

    before: dict[str, str]
    after: dict[str, str]
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (parameter, old, new), e.g. of set
    target: str = ""  # the editable file that set and replace change (the hypothesis' file, or the first)
    by_kind: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # the changes, kind by kind
    command: tuple[str, ...] = ()  # the command setting, unfilled (what args and overrides change)
    files: dict[str, str] = field(default_factory=dict)  # the file each kind changed, when not `target` (keys)

    @functools.cached_property
    def counts(self) -> tuple[int, int]:
        """(lines added, lines removed) over all editable files."""
        import difflib

        added = removed = 0
        for path, old in self.before.items():
            if old == self.after[path]:  # an editable file the patch left alone (a config file beside the code)
                continue
            for line in difflib.unified_diff(old.splitlines(), self.after[path].splitlines(), lineterm="", n=0):
                if line.startswith("+") and not line.startswith("+++"):
                    added += 1
                elif line.startswith("-") and not line.startswith("---"):
                    removed += 1
        return added, removed


class PatchKind:
    """One kind of patch. Subclass it, set `name` and `fields`, override what applies.

    A kind's *value* is whatever :meth:`parse` returns (immutable data: tuples, strings, frozen
    dataclasses); the :class:`~autoresearch.model.Hypothesis` holds it beside the kind.
    """

    #: The kind's name: its key in a hypothesis table, its method on the Python ``patch``
    #: object (``patch.set(...)``) and its word in reports (``set/replace in train.py``).
    name: ClassVar[str] = ""
    #: The hypothesis keys it reads, with their help: the first is its own table (``name``);
    #: any others are its options (``keys_allow_unknown``), listed after the common keys, which
    #: :meth:`parse` reads into the kind's value. The common ``file``, ``allow_new`` and
    #: ``allow_type_change`` are the hypothesis' own (``h.allow_new``), for any kind to honour.
    fields: ClassVar[dict[str, str]] = {}
    #: Built-in kinds whose keys are hashed even when absent, as they were before kinds were
    #: modules (``"set": []``), so that existing hypothesis keys never change. Leave it False:
    #: a new kind is hashed only when a hypothesis uses it, so it changes no existing key.
    legacy: ClassVar[bool] = False
    #: Whether a ``sweep`` feeds this kind (see :meth:`sweep`); ``set`` only, today.
    sweeps: ClassVar[bool] = False
    #: The ``autoresearch new`` option that writes this kind: ``add_argument`` keyword arguments
    #: plus ``flags`` (``{"flags": ("--set",), "metavar": "NAME=VALUE", ...}``); {} for none.
    #: Its values (a list: the option may be repeated) go to :meth:`from_new`.
    new_option: ClassVar[dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<patch kind {self.name}>"

    def __eq__(self, other: object) -> bool:  # a copy (pickled to a worker and back) is the same kind
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.name))

    def parse(self, raw: dict[str, Any], fail: Callable[[str, str | None], CollectError]) -> Any:
        """The kind's value from a raw hypothesis (a TOML table, or the decorator's record with the
        Python calls in it), checked as data; None when the hypothesis does not use this kind.
        Raise ``fail(message, key)`` (a :class:`CollectError` at the key's line) for bad data."""
        return None

    def from_calls(self, calls: list[tuple[tuple, dict]]) -> Any:
        """The raw table value that the Python API's calls ``patch.<name>(*args, **kwargs)`` stand
        for (what :meth:`parse` then reads); raise TypeError or ValueError for wrong calls."""
        raise TypeError(f"patch.{self.name}() is not available from Python")

    def from_new(self, values: list[Any]) -> Any:
        """The raw table value that ``autoresearch new``'s repeated option stands for (``--set LR=0.02
        --set DEPTH=6`` -> ``{"LR": 0.02, "DEPTH": 6}``); None when not given. Raise ValueError with
        a one-line message (``--set 'x': write NAME=VALUE ...``) for a malformed value."""
        return None

    def claims(self, name: str, raw: dict[str, Any]) -> bool:
        """Whether a ``sweep`` key belongs to this kind (when `sweeps`): a Python name to ``set``,
        ``--flag`` to ``args``; `raw` is the hypothesis' table ({} for a Python hypothesis)."""
        return False

    def sweep(self, value: Any, params: tuple[tuple[str, Any], ...]) -> Any:
        """The raw table value with one sweep combination applied (when `sweeps`)."""
        return value

    def apply(self, value: Any, h: Hypothesis, result: PatchResult, editable: list[str],
              protected: list[str]) -> None:
        """Change ``result.after`` (the editable files' texts) in place; append to ``result.changes``
        the parameters it changes, as (name, old, new). Raise :class:`PatchError` (with its
        ``kind`` and ``key``) when it does not apply."""
        raise NotImplementedError

    def describe(self, value: Any, result: PatchResult) -> list[str]:
        """Short phrases for ``--collect-only`` and tables (``LR 0.01 → 0.02``, ``diff``)."""
        return [self.name]

    def key(self, value: Any) -> dict[str, Any]:
        """The entries the hypothesis' key hashes for this kind (JSON data); None means unused."""
        return {self.name: value}

    def parameters(self, texts: dict[str, str]) -> dict[str, str]:
        """The configuration the editable files' `texts` run with, as this kind names it (parameter
        -> its value as source text): MLflow logs it for every run and ``autoresearch diff``
        compares it. ``set`` gives every module-level constant with a literal value; {} by default."""
        return {}


def builtin_kinds() -> tuple[PatchKind, ...]:
    from autoresearch.patches.diff import DIFF
    from autoresearch.patches.keys import KEYS
    from autoresearch.patches.replace import REPLACE
    from autoresearch.patches.set import SET
    from autoresearch.patches.args import ARGS, OVERRIDES

    return (SET, REPLACE, DIFF, KEYS, ARGS, OVERRIDES)


def apply_patch(h: Hypothesis, texts: dict[str, str], editable: list[str], protected: list[str],
                command: list[str] | tuple[str, ...] | None = None) -> PatchResult:
    """Apply a hypothesis' patch to the editable files' texts (nothing is written), kind by kind;
    `command` is the command setting, for the kinds that change it (args, overrides)."""
    target = h.file or editable[0]
    if target not in texts:
        raise PatchError(f"file: {target} is not an editable file (editable: {', '.join(editable)})", "file", None)
    result = PatchResult(before=dict(texts), after=dict(texts), target=target, command=tuple(command or ()))
    for kind, value in h.patches:
        start = len(result.changes)
        kind.apply(value, h, result, editable, protected)
        result.by_kind[kind.name] = result.changes[start:]
    return result


def configuration(texts: dict[str, str], kinds: tuple[PatchKind, ...] | None = None) -> dict[str, str]:
    """Every parameter the editable files' `texts` run with: each kind's :meth:`PatchKind.parameters`,
    merged in the registry's order (a later kind's name wins)."""
    out: dict[str, str] = {}
    for kind in kinds or builtin_kinds():
        out.update(kind.parameters(texts))
    return out


def describe(h: Hypothesis, result: PatchResult) -> list[str]:
    """What a hypothesis' patch changes, as ``--collect-only`` lists it (``LR 0.01 → 0.02``, ``diff``)."""
    return [phrase for kind, value in h.patches for phrase in kind.describe(value, result)]


def patch_kinds(h: Hypothesis | None) -> tuple[str, ...]:
    """The kinds a hypothesis uses, in registry order (``("set", "diff")``); () for the baseline."""
    return tuple(kind.name for kind, _ in h.patches) if h is not None else ()


def add_new_options(parser: Any, kinds: tuple[PatchKind, ...]) -> None:
    """Add each kind's ``autoresearch new`` option to an argparse parser (dest: the kind's ``dest``,
    else ``patch_<name>``)."""
    for kind in kinds:
        if kind.new_option:
            options = dict(kind.new_option)
            flags = options.pop("flags")
            options.setdefault("dest", f"patch_{kind.name}")
            options.setdefault("action", "append")
            options.setdefault("default", [])
            parser.add_argument(*flags, **options)


def raw_from_new(options: Any, kinds: tuple[PatchKind, ...]) -> dict[str, Any]:
    """The hypothesis keys that ``autoresearch new``'s options stand for (``{"set": {...}}``), kind
    by kind, from the parsed options (see :func:`add_new_options`); ValueError for a bad value."""
    raw: dict[str, Any] = {}
    for kind in kinds:
        if kind.new_option:
            dest = kind.new_option.get("dest", f"patch_{kind.name}")
            value = kind.from_new(list(getattr(options, dest, None) or []))
            if value:
                raw[kind.name] = value
    return raw
