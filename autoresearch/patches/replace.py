"""``replace``: exact text of the editable file that must occur exactly once, and what replaces it."""
from __future__ import annotations

from dataclasses import dataclass

from autoresearch.errors import PatchError
from autoresearch.patches import PatchKind, PatchResult


@dataclass(frozen=True)
class Replace:
    old: str
    new: str


def apply_replace(source: str, old: str, new: str, filename: str) -> str:
    count = source.count(old)
    first = old.strip().splitlines()[0] if old.strip() else old
    if count == 0:
        raise PatchError(f"replace: text not found in {filename}: {first[:60]!r} (give text that occurs exactly once)",
                         "replace")
    if count > 1:
        raise PatchError(f"replace: text found {count} times in {filename}: {first[:60]!r} "
                         "(add surrounding lines so it occurs exactly once)", "replace")
    return source.replace(old, new, 1)


def _call(old: str, new: str) -> dict[str, str]:
    return {"old": old, "new": new}


class ReplaceKind(PatchKind):
    """``[[replace]] old = ... new = ...``, ``patch.replace(old, new)``; the value is ``(Replace, ...)``."""

    name = "replace"
    fields = {"replace": "list of {old, new} tables: exact text that must occur exactly once"}
    legacy = True
    new_option = {"flags": ("--replace",), "dest": "replace", "nargs": 2, "metavar": ("OLD", "NEW"),
                  "help": "replace exact text OLD (which must occur once) with NEW"}

    def parse(self, raw, fail):
        replaces = raw.get("replace", [])
        if isinstance(replaces, dict):
            replaces = [replaces]
        if not isinstance(replaces, list) or not all(
                isinstance(r, dict) and set(r) == {"old", "new"} and all(isinstance(v, str) for v in r.values())
                for r in replaces):
            raise fail("replace must be a list of tables with exactly the string keys old and new", "replace")
        if any(not r["old"] for r in replaces):
            raise fail("replace.old is empty (give the exact text to replace)", "replace")
        return tuple(Replace(r["old"], r["new"]) for r in replaces) or None

    def from_calls(self, calls):
        return [_call(*args, **kwargs) for args, kwargs in calls]

    def from_new(self, values):
        return [{"old": old, "new": new} for old, new in values]

    def apply(self, value, h, result: PatchResult, editable, protected):
        for r in value:
            result.after[result.target] = apply_replace(result.after[result.target], r.old, r.new, result.target)

    def describe(self, value, result):
        return [f"replace {len(value)} text{'s' if len(value) > 1 else ''}"]

    def key(self, value):
        return {"replace": [{"old": r.old, "new": r.new} for r in value or ()]}


REPLACE = ReplaceKind()
