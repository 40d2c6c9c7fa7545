"""Where a key's value lies in a YAML, JSON or TOML file, and how a new value is written there.

Each format finds the value's bytes (:func:`find`) and the ``keys`` kind splices the new value's
text into exactly those bytes, so every other byte of the file stays as it was: comments, key
order, indentation, quoting. A value is rendered in the file's own syntax (:mod:`.keyrender`).
YAML is read with ruamel.yaml (its node marks give the spans), TOML with tomlkit (a probe value
locates the span once per file text and key), JSON with the standard library's decoder (its end
offsets). The parsers are imported only when a ``keys`` patch is applied, and each file text is
parsed once (cached), so a thousand hypotheses on one config file parse it once.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


@dataclass(frozen=True)
class Segment:
    """One step of a key path: a table key, or a list index when it is bare digits (``layers.0``)."""

    name: str
    quoted: bool = False

    @property
    def index(self) -> int | None:
        return int(self.name) if not self.quoted and self.name.isascii() and self.name.isdigit() else None

    @property
    def text(self) -> str:
        """The segment as a path writes it: quoted when it holds a dot or a quote, or is empty."""
        if self.quoted or not self.name or re.search(r'[."\\]', self.name):
            return '"' + self.name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return self.name


class KeyProblem(Exception):
    """A key that does not lead to a value: the message says what exists instead (no prefix)."""


@dataclass
class Slot:
    """A value found in a file: its bytes ``text[start:end]`` (characters), its value, and the style
    to write a new one in. `known` is False when the value is of a type the kind does not check."""

    start: int
    end: int
    value: Any
    known: bool = True
    style: str = ""  # YAML: '"', "'", '|', '>' or '' (plain); TOML: "'" for a literal string
    multiline: bool = False
    indent: str = ""  # the indentation of the line the value starts on


@dataclass
class Missing:
    """Where a key is not: the segments that exist (`found`), the first that does not, and the
    keys or size of the container it was looked up in, for the message and for allow_new."""

    found: tuple[Any, ...]
    missing: Any
    keys: list[str] = field(default_factory=list)
    size: int | None = None  # the list's length, when the missing segment is an index
    scalar: Any = None  # what was found instead of a container ("not a table"), when not None
    container: Any = None  # the format's handle on the container (a node, a span), for allow_new


def line_indent(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    return re.match(r"[ \t]*", text[start:pos]).group(0)  # type: ignore[union-attr]


# -------------------------------------------------------------------------------------------
# JSON: the decoder skips what is not on the path; its end offsets are the spans


_WS = re.compile(r"[ \t\n\r]*")


@functools.lru_cache(maxsize=8)
def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder()


@functools.lru_cache(maxsize=16)
def _json_valid(text: str) -> bool:
    json.loads(text.removeprefix("\ufeff"))  # the whole file, once: the walk below reads only the path
    return True


def json_find(text: str, segments: tuple) -> Slot | Missing:
    """The span of the value at `segments` in a JSON text (a ValueError when it is not JSON)."""
    from json.decoder import scanstring

    _json_valid(text)
    pos = _WS.match(text, 1 if text.startswith("\ufeff") else 0).end()
    decode = _decoder().raw_decode
    for depth, seg in enumerate(segments):
        char = text[pos:pos + 1]
        if char == "{":
            members: dict[str, int] = {}
            i = _WS.match(text, pos + 1).end()
            while text[i:i + 1] == '"':
                key, i = scanstring(text, i + 1)
                i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # past the colon
                members[key] = i  # the last of a repeated key, as json.loads reads it
                i = _WS.match(text, decode(text, i)[1]).end()
                i = _WS.match(text, i + 1).end() if text[i:i + 1] == "," else i
            if seg.name not in members:
                return Missing(segments[:depth], seg, list(members), container=(pos, i + 1))
            pos = members[seg.name]
        elif char == "[":
            items, i = [], _WS.match(text, pos + 1).end()
            while text[i:i + 1] not in ("]", ""):
                items.append(i)
                i = _WS.match(text, decode(text, i)[1]).end()
                i = _WS.match(text, i + 1).end() if text[i:i + 1] == "," else i
            if seg.index is None or seg.index >= len(items):
                return Missing(segments[:depth], seg, size=len(items))
            pos = items[seg.index]
        else:
            return Missing(segments[:depth], seg, scalar=decode(text, pos)[0])
    value, end = decode(text, pos)
    return Slot(pos, end, value, multiline="\n" in text[pos:end], indent=line_indent(text, pos))



# -------------------------------------------------------------------------------------------
# YAML: ruamel.yaml's composer gives every node's start and end


@functools.lru_cache(maxsize=16)
def _compose(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="rt").compose(text)


def yaml_scalar(node: Any) -> tuple[Any, bool]:
    """A scalar node's value by its resolved tag, and whether that is a type the kind checks."""
    tag, text = node.tag.rsplit(":", 1)[-1], node.value
    try:
        if tag == "null":
            return None, True
        if tag == "bool":
            return text.lower() in ("true", "yes", "on", "y"), True
        if tag == "int":
            clean = text.replace("_", "")
            try:
                return int(clean, 0), True
            except ValueError:
                return int(clean, 10), True
        if tag == "float":
            low = text.lower().replace("_", "")
            return float(low.replace(".inf", "inf").replace(".nan", "nan")), True
    except ValueError:
        return text, False
    return text, tag == "str"


def yaml_value(node: Any, depth: int = 0) -> Any:
    """A node as Python data (for messages and type checks): tables, lists, scalars."""
    kind = type(node).__name__
    if depth > 32:
        return "..."
    if kind == "MappingNode":
        return {str(k.value): yaml_value(v, depth + 1) for k, v in node.value}
    if kind == "SequenceNode":
        return [yaml_value(v, depth + 1) for v in node.value]
    return yaml_scalar(node)[0]


def yaml_end(node: Any) -> int:
    """Where a node's own text ends: its last scalar's end (a block collection's end mark lies past
    the comments and blank lines that follow it)."""
    while type(node).__name__ in ("MappingNode", "SequenceNode") and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node.end_mark.index


def yaml_find(text: str, segments: tuple) -> Slot | Missing:
    node = _compose(text)
    if node is None:
        raise KeyProblem("is empty (no YAML document)")
    for depth, seg in enumerate(segments):
        if node.anchor:
            where = _join(segments[:depth]) if depth else "the document"
            raise KeyProblem(f"{where} is an anchor (&{node.anchor}) that aliases share: a change there changes "
                             "them too (edit it with replace)")
        kind = type(node).__name__
        if kind == "MappingNode":
            keys = [k for k, _ in node.value]
            found = [v for k, v in node.value if type(k).__name__ == "ScalarNode" and k.value == seg.name]
            if not found:
                names = [str(k.value) for k in keys if type(k).__name__ == "ScalarNode"]
                return Missing(segments[:depth], seg, names, container=node)
            node = found[-1]
        elif kind == "SequenceNode":
            if seg.index is None or seg.index >= len(node.value):
                return Missing(segments[:depth], seg, size=len(node.value))
            node = node.value[seg.index]
        else:
            return Missing(segments[:depth], seg, scalar=yaml_scalar(node)[0])
    if node.anchor:
        raise KeyProblem(f"is an anchor (&{node.anchor}) that aliases share: a change there changes them too "
                         "(edit it with replace)")
    start, end = node.start_mark.index, yaml_end(node)
    if type(node).__name__ == "ScalarNode":
        value, known = yaml_scalar(node)
        style = node.style or ""
        if start == end:  # a null written as nothing (`a:`, `- `): the value goes after its indicator
            start = end = _after_indicator(text, start)
            style = "empty"
    else:
        value, known, style = yaml_value(node), True, "block" if not node.flow_style else "flow"
    if style in ("|", ">"):
        end = len(text[:end].rstrip("\n"))  # the block scalar's last line break stays
    return Slot(start, end, value, known, style, "\n" in text[start:end], line_indent(text, start))



def _after_indicator(text: str, pos: int) -> int:
    """Where an empty YAML value's text starts: just after the `:`, `-` or `?` before it (the
    parser marks an empty scalar where the next token is, which may be on a later line)."""
    p = pos
    while p > 0 and text[p - 1] in " \t\r\n":
        p -= 1
    if p > 0 and text[p - 1] in ":-?":
        return p
    raise KeyProblem("holds an empty value with a comment after it (write a value there first, or edit it "
                     "with replace)")


def _join(segments: tuple) -> str:
    return ".".join(s.text for s in segments)


# -------------------------------------------------------------------------------------------
# TOML: tomlkit reads it; a probe value written once per (text, key) shows where the value lies

_PROBE = "autoresearch-probe-7f3a9c"


@functools.lru_cache(maxsize=16)
def _toml(text: str) -> Any:
    import tomlkit

    return tomlkit.parse(text)


def _toml_walk(doc: Any, segments: tuple) -> tuple[Any, Any, Any] | Missing:
    """(container, key or index, item) at `segments`, or where the path stops."""
    parent, key, node = None, None, doc
    for depth, seg in enumerate(segments):
        if isinstance(node, dict):
            if seg.name not in node:
                return Missing(segments[:depth], seg, [str(k) for k in node], container=node)
            parent, key, node = node, seg.name, node.item(seg.name) if hasattr(node, "item") else node[seg.name]
        elif isinstance(node, list):
            if seg.index is None or seg.index >= len(node):
                return Missing(segments[:depth], seg, size=len(node))
            parent, key, node = node, seg.index, node[seg.index]
        else:
            return Missing(segments[:depth], seg, scalar=_plain(node))
    return parent, key, node


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


@functools.lru_cache(maxsize=4096)
def _toml_span(text: str, segments: tuple) -> tuple[int, int] | None:
    """The span of a scalar's text, found by writing a probe there in a fresh parse (None: not found
    that way; the caller then writes the whole file with tomlkit)."""
    import tomlkit

    doc = tomlkit.parse(text)
    walked = _toml_walk(doc, segments)
    parent, key, item = walked  # type: ignore[misc]
    old = item.as_string()
    parent[key] = tomlkit.item(_PROBE)
    probed = tomlkit.dumps(doc)
    mark = f'"{_PROBE}"'
    at = probed.find(mark)
    if at < 0 or probed.count(mark) != 1:
        return None
    if probed[:at] + old + probed[at + len(mark):] != text:
        return None
    return at, at + len(old)


def toml_find(text: str, segments: tuple) -> Slot | Missing:
    walked = _toml_walk(_toml(text), segments)
    if isinstance(walked, Missing):
        return walked
    _, _, item = walked
    value = _plain(item)
    if isinstance(value, (dict, list)) or segments == ():
        return Slot(-1, -1, value, True, "container")
    span = _toml_span(text, segments)
    if span is None:
        return Slot(-1, -1, value, True, "container")
    raw = text[span[0]:span[1]]
    style = "'" if raw.startswith("'") else ""
    known = isinstance(value, (bool, int, float, str))
    return Slot(span[0], span[1], value, known, style, "\n" in raw, line_indent(text, span[0]))


def toml_write(text: str, segments: tuple, value: Any) -> str:
    """Set `segments` to `value` with tomlkit (a fresh parse) and write the file: for tables, lists
    and new keys, where no single span holds the value."""
    import tomlkit

    doc = tomlkit.parse(text)
    node = doc
    for seg in segments[:-1]:
        if isinstance(node, list):
            node = node[seg.index]
        else:
            if seg.name not in node:
                node[seg.name] = tomlkit.table()
            node = node[seg.name]
    last = segments[-1]
    node[last.index if isinstance(node, list) else last.name] = value
    return tomlkit.dumps(doc)



@functools.lru_cache(maxsize=4096)  # collection looks up the same keys of the same text again and again
def find(fmt: str, text: str, segments: tuple) -> Slot | Missing:
    """The value at `segments` in a file of format `fmt` (``yaml``, ``json``, ``toml``), or where the
    path stops. A file that does not parse raises ValueError with the parser's message. What it
    returns is shared between calls: read it, never change it."""
    try:
        return {"json": json_find, "yaml": yaml_find, "toml": toml_find}[fmt](text, segments)
    except (KeyProblem, RecursionError):
        raise
    except Exception as exc:  # each parser's own error: one line, with its position when it gives one
        if type(exc).__name__ == "KeyProblem":
            raise
        message = " ".join(str(exc).split())
        raise ValueError(message[:200] or type(exc).__name__) from None

