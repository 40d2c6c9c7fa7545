"""The run's patch kinds: the built-in ones, then those plugins add through the
``autoresearch_patch_kinds`` hook, checked once per configuration."""
from __future__ import annotations

import re
import weakref
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.model import COMMON_FIELDS
from autoresearch.patches import PatchKind, builtin_kinds

_REGISTRIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def registry(config: Any = None) -> tuple[PatchKind, ...]:
    """The patch kinds of a run: the built-in ones, then those plugins return from
    ``autoresearch_patch_kinds`` (checked once per configuration: a UsageError names the plugin's kind)."""
    if getattr(config, "hook", None) is None:  # no configuration, or no plugins: the built-in kinds
        return builtin_kinds()
    try:
        return _REGISTRIES[config]
    except (KeyError, TypeError):
        pass
    kinds = list(builtin_kinds())
    taken = {*COMMON_FIELDS, *(f for k in kinds for f in k.fields)}
    for found in config.hook.autoresearch_patch_kinds(config=config):
        for kind in found or ():
            problem = kind_problem(kind, taken)
            if problem:
                raise UsageError(f"autoresearch_patch_kinds: {problem}")
            kinds.append(kind)
            taken |= {*kind.fields}
    try:
        _REGISTRIES[config] = tuple(kinds)
    except TypeError:  # a configuration that cannot be weakly referenced: ask again next time
        pass
    return tuple(kinds)


def kind_problem(kind: Any, taken: set[str]) -> str | None:
    """Why `kind` cannot be registered, or None: a PatchKind with a Python name as its own first
    field, whose keys no other kind or common key uses."""
    if not isinstance(kind, PatchKind):
        return f"{kind!r} is not a PatchKind (subclass autoresearch.patches.PatchKind)"
    fields = list(kind.fields)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,30}", kind.name or "") or not fields or fields[0] != kind.name:
        return (f"kind {kind.name!r}: its name must be a lower-case Python name and the first of its fields "
                f"(fields: {', '.join(fields) or 'none'})")
    clash = sorted({*fields} & taken)
    if clash:
        return f"kind {kind.name!r}: key {clash[0]!r} is already used (by another kind or a common key)"
    return None
