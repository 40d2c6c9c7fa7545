"""``keys``: assign keys of a YAML, JSON or TOML editable file, by their dotted paths.

``[keys] "model.temperature" = 1.0`` finds the value of ``temperature`` under ``model`` and
splices the new value's text into exactly its bytes (:mod:`.keyfiles` finds them, :mod:`.keyrender`
writes the value in the file's style), so comments, key order and formatting are kept. It works
by value, as ``set`` does: a keep that changed the same line leaves the key where it was, and the
patch still applies. A path is dot-separated keys; bare digits index a list (``layers.0.width``);
a key that holds a dot is quoted (``'a."b.c".d'``).
"""
from __future__ import annotations

import functools
from typing import Any

from autoresearch.errors import PatchError
from autoresearch.patches import PatchKind, PatchResult
from autoresearch.patches.keyfiles import FORMATS, KeyProblem, Missing, Segment, Slot, find
from autoresearch.patches.keyrender import insert, render, shown
from autoresearch.patches.set import ALLOWED, _compatible, literal_problem, option_value

MAX_PATH = 300  # characters of one key path


@functools.lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[Segment, ...]:
    """``model.layers.0`` -> segments; ``a."b.c"`` quotes a key that holds a dot (``\\"`` and ``\\\\``
    escape within quotes). A ValueError says what is wrong."""
    if not path or len(path) > MAX_PATH:
        raise ValueError(f"a key path of 1 to {MAX_PATH} characters")
    segments, i = [], 0
    while True:
        if path.startswith('"', i):
            name, i, escaped = [], i + 1, False
            while i < len(path) and (escaped or path[i] != '"'):
                if not escaped and path[i] == "\\":
                    escaped = True
                else:
                    name.append(path[i])
                    escaped = False
                i += 1
            if i >= len(path):
                raise ValueError("a quote that is not closed")
            segments.append(Segment("".join(name), True))
            i += 1
        else:
            end = path.find(".", i)
            end = len(path) if end < 0 else end
            name = path[i:end]
            if not name or '"' in name:
                raise ValueError("an empty segment or a stray quote (write a.b.c; quote keys that hold dots: "
                                 'a."b.c")')
            segments.append(Segment(name))
            i = end
        if i == len(path):
            return tuple(segments)
        if path[i] != ".":
            raise ValueError("a quoted key must be followed by a dot or the end")
        i += 1


def flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A [keys] table as (path, value) pairs: nested tables (``model.temperature = 1`` written bare in
    TOML) are read as deeper keys; an empty table is a value."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        key = str(key)
        if prefix:  # a key of a nested table is one segment: quoted when it must be
            key = f"{prefix}.{Segment(key).text}"
        if isinstance(value, dict) and value:
            out += flatten(value, key)
        else:
            out.append((key, value))
    return out


def suffix(path: str) -> str:
    """``config.YAML`` -> ``.yaml``; "" for none (a leading dot is a hidden file's name, not a suffix)."""
    name = path.rsplit("/", 1)[-1]
    return name[name.rfind("."):].lower() if name.rfind(".") > 0 else ""


def target_file(h: Any, editable: list[str]) -> str:
    """The file a keys patch changes: the hypothesis' `file` when it is YAML, JSON or TOML, else the
    only editable file that is."""
    if h.file and suffix(h.file) in FORMATS:
        return h.file
    configs = [e for e in editable if suffix(e) in FORMATS]
    if len(configs) == 1 and (not h.file or h.file in editable):
        return configs[0]
    if h.file and h.file in editable:
        raise PatchError(f"keys: {h.file} is not a YAML, JSON or TOML file (keys edits .yaml, .yml, .json and .toml "
                         f"files; editable ones: {', '.join(configs) or 'none'})", "file")
    if not configs:
        raise PatchError(f"keys: no editable file is YAML, JSON or TOML (editable: {', '.join(editable)}; add the "
                         "config file to editable = [...] in [tool.autoresearch])", "keys")
    raise PatchError(f"keys: say which file, with file = \"...\" (editable YAML, JSON and TOML files: "
                     f"{', '.join(configs)})", "file" if h.file else "keys")


def _join(segments: tuple) -> str:
    return ".".join(s.text for s in segments)


def unknown(path: str, missing: Missing, filename: str) -> PatchError:
    """Why `path` leads nowhere in `filename`, with what exists nearby."""
    where, seg = _join(missing.found), missing.missing
    if missing.scalar is not None or (missing.size is None and not missing.keys and missing.container is None):
        what = "null" if missing.scalar is None else f"a {type(missing.scalar).__name__} ({shown(missing.scalar)})"
        message = f"{where or 'the document'} in {filename} is {what}, not a table or a list"
    elif missing.size is not None:
        items = f"{missing.size} item{'s' if missing.size != 1 else ''}"
        span = f"indices 0 to {missing.size - 1}" if missing.size else "none"
        message = (f"{where or 'the document'} in {filename} is a list of {items} ({span}); "
                   + (f"{seg.text} is not an index" if seg.index is None else
                      f"{seg.index} is past its end (keys changes items; it does not add them, even with allow_new)"))
    else:
        import difflib  # here: collecting hypotheses needs it only for a misspelt name

        close = difflib.get_close_matches(seg.name, missing.keys, n=3, cutoff=0.6)
        close += [k for k in missing.keys if k.lower() == seg.name.lower() and k not in close]
        more = len(missing.keys) - 40
        listed = ", ".join(missing.keys[:40]) + (f", and {more} more" if more > 0 else "")
        near = f"keys of {where}" if where else "top-level keys"
        hint = (f"did you mean {', '.join(_join((*missing.found, Segment(c))) for c in close)}? " if close else "")
        message = (f"{filename} has no key {path} ({hint}{near}: {listed or 'none'}; allow_new = true adds it)")
    return PatchError(f"keys.{path}: {message}", "keys", path)


def _type_problem(path: str, slot: Slot, new: Any, text: str) -> PatchError | None:
    old = slot.value
    if not slot.known or old is None or _compatible(old, new) or (isinstance(old, dict) and isinstance(new, dict)):
        return None
    old_text = " ".join(text[slot.start:slot.end].split()) if slot.start >= 0 else shown(old)
    return PatchError(f"keys.{path}: type change from {type(old).__name__} ({old_text[:60]}) to {type(new).__name__} "
                      f"({new!r}) (give a {type(old).__name__}, or set allow_type_change = true)", "keys", path)


def _lookup(fmt: str, text: str, path: str, new: Any, filename: str, allow_type_change: bool,
            allow_new: bool) -> Slot | Missing:
    """Where `path` is in `text`, checked: a PatchError for a key the file lacks (unless `allow_new`
    and a table is there to add it to), a type change, or a file that does not parse."""
    try:
        slot = find(fmt, text, parse_path(path))
    except KeyProblem as exc:
        raise PatchError(f"keys.{path}: {path} in {filename} {exc}", "keys", path) from None
    except RecursionError:
        raise PatchError(f"keys: {filename} is nested too deep to read as {fmt.upper()}", "keys", path) from None
    except ValueError as exc:
        raise PatchError(f"keys: {filename} does not parse as {fmt.upper()} ({exc})", "keys", path) from None
    if isinstance(slot, Missing) and not (allow_new and slot.container is not None and slot.scalar is None):
        raise unknown(path, slot, filename)
    if isinstance(slot, Slot) and not allow_type_change:
        problem = _type_problem(path, slot, new, text)
        if problem:
            raise problem
    return slot


def _write(fmt: str, text: str, path: str, slot: Slot | Missing, new: Any) -> tuple[str, str, str, str]:
    """(the text that replaces the slot's bytes, or the whole new file when the slot has none;
    the old and new values as shown; "span" or "file" for which of the two the first one is)."""
    segments = parse_path(path)
    if isinstance(slot, Missing):
        return insert(fmt, text, slot, segments, new), "(new)", shown(new, fmt), "file"
    if slot.start < 0:  # TOML tables and lists: tomlkit writes them
        from autoresearch.patches.keyfiles import toml_write

        if isinstance(slot.value, float) and isinstance(new, int) and not isinstance(new, bool):
            new = float(new)
        return toml_write(text, segments, new), shown(slot.value, fmt), shown(new, fmt), "file"
    written = render(fmt, new, slot, text)
    old_text = text[slot.start:slot.end]
    old_shown = old_text if old_text and "\n" not in old_text and len(old_text) <= 80 else shown(slot.value, fmt)
    new_shown = written.strip() if "\n" not in written and len(written) <= 80 else shown(new, fmt)
    return written, old_shown, new_shown, "span"


def apply_keys(text: str, fmt: str, values: tuple[tuple[str, Any], ...], filename: str,
               allow_type_change: bool = False, allow_new: bool = False) -> tuple[str, list[tuple[str, str, str]]]:
    """Assign keys by path; returns the new text and (path, old, new) as shown to the user.

    Every key is looked up in the file as it is; the new values are spliced in together (last
    first) unless one key lies inside another or a value needs the format library to write it
    (a TOML table or list, a new key), when they are applied one after the other."""
    for path, _ in values:
        try:
            parse_path(path)
        except ValueError as exc:
            raise PatchError(f"keys.{path[:60]!r}: not a key path: {exc}", "keys", path) from None
    found = [_lookup(fmt, text, path, new, filename, allow_type_change, allow_new) for path, new in values]
    spans = sorted((s.start, s.end) for s in found if isinstance(s, Slot) and s.start >= 0)
    together = len(spans) == len(found) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    changes, edits = [], []
    for (path, new), slot in zip(values, found):
        if not together and len(values) > 1:  # one after the other, each on the text the last one wrote
            slot = _lookup(fmt, text, path, new, filename, allow_type_change, allow_new)
        try:
            written, old_shown, new_shown, what = _write(fmt, text, path, slot, new)
        except KeyProblem as exc:
            raise PatchError(f"keys.{path}: {path} {exc}", "keys", path) from None
        except Exception as exc:  # the format library refused the value or the file: one line, not a traceback
            message = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise PatchError(f"keys.{path}: cannot write {new!r} there in {filename} ({message})", "keys",
                             path) from None
        changes.append((path, old_shown, new_shown))
        if what == "file":
            text = written
        elif together:
            edits.append((slot.start, slot.end, written))
        else:
            text = text[:slot.start] + written + text[slot.end:]
    for start, end, written in sorted(edits, reverse=True):
        text = text[:start] + written + text[end:]
    return text, changes


class KeysKind(PatchKind):
    """``[keys] "model.temperature" = 1.0``, ``patch.keys({"model.temperature": 1.0})``; the value is
    ``((path, value), ...)``."""

    name = "keys"
    fields = {"keys": "table of keys of a YAML, JSON or TOML editable file to assign, \"model.temperature\" = 1.0 "
                      "(dotted paths, list indices as layers.0.width, quoted keys as 'a.\"b.c\"')"}
    new_option = {"flags": ("--key",), "dest": "keys", "metavar": "PATH=VALUE",
                  "help": "a key of the editable YAML, JSON or TOML file to assign (model.temperature=1.0, "
                          "layers.0.width=64); VALUE as for --set; the file is the only editable config file, "
                          "or --file"}

    def parse(self, raw, fail):
        table = raw.get("keys", {})
        if not isinstance(table, dict):
            raise fail("keys must be a table of \"dotted.key\" = value", "keys")
        pairs = flatten(table)
        for path, value in pairs:
            try:
                parse_path(path)
            except ValueError as exc:
                raise fail(f"keys.{path[:60]!r}: not a key path: {exc}", path) from None
            problem = literal_problem(value)
            if problem:
                raise fail(f"keys.{path}: {problem} (allowed: {ALLOWED})", path)
        return tuple(pairs) or None

    def from_calls(self, calls):
        out: dict[str, Any] = {}
        for args, kwargs in calls:
            if len(args) > 1 or (args and not isinstance(args[0], dict)):
                raise TypeError("patch.keys() takes one table of paths and values, or path=value keywords "
                                "(patch.keys({\"model.temperature\": 1.0}))")
            out.update(*args, **kwargs)
        return out

    def from_new(self, values):
        out: dict[str, Any] = {}
        for item in values:
            path, value = _split(item)
            out[path] = option_value(value)
        return out

    def apply(self, value, h, result: PatchResult, editable, protected):
        target = target_file(h, editable)
        if target not in result.after:
            raise PatchError(f"file: {target} is not an editable file (editable: {', '.join(editable)})", "file")
        fmt = FORMATS[suffix(target)]
        result.after[target], changes = apply_keys(result.after[target], fmt, value, target, h.allow_type_change,
                                                   h.allow_new)
        result.changes += changes
        result.files[self.name] = target

    def describe(self, value, result):
        return [f"{n} {o} → {v}" for n, o, v in result.by_kind.get(self.name, ())]

    def key(self, value):
        return {"keys": [list(pair) for pair in value or ()]}


def _split(item: str) -> tuple[str, str]:
    """``model.temperature=1.0`` -> (path, value text): the first ``=`` outside quotes."""
    quoted = False
    for i, char in enumerate(item):
        if char == '"' and (i == 0 or item[i - 1] != "\\"):
            quoted = not quoted
        elif char == "=" and not quoted:
            return item[:i].strip(), item[i + 1:].strip()
    raise ValueError(f"--key {item!r}: write PATH=VALUE, e.g. --key model.temperature=1.0")


KEYS = KeysKind()

__all__ = ["KEYS", "KeysKind", "apply_keys", "flatten", "parse_path", "target_file"]
