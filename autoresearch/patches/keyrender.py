"""A value as YAML, JSON or TOML text, in the style of the value it replaces; a new key added.

Numbers keep the file's style as ``set`` keeps Python's (an integer given for a float stays a
float, ``6e-4`` becomes ``1e-3``, not ``0.001``); strings keep their quotes where the new text
allows them. YAML floats always carry a dot and a signed exponent (``1.0e-3``), which YAML 1.1
readers such as PyYAML also read as floats; YAML strings are written plain only when no reader
could take them for anything but a string.
"""
from __future__ import annotations

import json
import re
from typing import Any

from autoresearch.patches.keyfiles import KeyProblem, Missing, Slot, yaml_end, toml_write
from autoresearch.patches.set import exponent

class _Lazy:
    """A regular expression compiled on its first use: collecting hypotheses (``status``' queue)
    imports this module, and only writing a key to a file needs these."""

    def __init__(self, *args: Any) -> None:
        self.args, self.compiled = args, None

    def __getattr__(self, name: str) -> Any:
        if self.compiled is None:
            self.compiled = re.compile(*self.args)
        return getattr(self.compiled, name)


_EXPONENT = _Lazy(r"[-+]?[\d._]+[eE][-+]?\d+")
# what YAML reads back as written in a double-quoted scalar (no line breaks it would fold, no BOM)
_YAML_RAW = _Lazy("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
                       "\U00010000-\U0010ffff]")
_YAML_PLAIN = _Lazy(r"[A-Za-z_][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./-]+)*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}
_TOML_LITERAL = _Lazy(r"[^'\x00-\x08\x0a-\x1f\x7f]*")


def number(value: Any, old: Any, old_text: str, fmt: str) -> str:
    """An int, float or bool as `fmt` writes it, in the style of the old value's text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not (isinstance(old, float) and not isinstance(old, bool)):
        return str(value)
    value = float(value)
    text = repr(value)
    if _EXPONENT.fullmatch(old_text.strip()) and value != 0:
        text = exponent(value)
    if fmt == "yaml" and "e" in text:
        mantissa, power = text.split("e")
        text = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{power if power[0] in '+-' else '+' + power}"
    return text


def yaml_string(value: str, style: str = "") -> str:
    if style == "'" and not _YAML_RAW.search(value) and "\n" not in value and value.strip() == value:
        return "'" + value.replace("'", "''") + "'"
    if style in ("", "plain") and _YAML_PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return yaml_quoted(value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def yaml_quoted(value: str) -> str:
    """A double-quoted YAML scalar: what YAML would not read back as written is escaped, one
    character at a time (YAML does not join escaped surrogate pairs, as JSON does)."""
    out = []
    for char in value:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _YAML_RAW.match(char):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_string(value: str, style: str = "") -> str:
    if style == "'" and _TOML_LITERAL.fullmatch(value):
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def inline(value: Any, fmt: str, old: Any = None, old_text: str = "", style: str = "", depth: int = 0) -> str:
    """`value` on one line: a scalar in the old value's style, a list or table in flow style."""
    if value is None:
        if fmt == "toml":
            raise KeyProblem("cannot be null: TOML has no null (give a value)")
        return "~" if old_text.strip() == "~" else "null"
    if fmt == "toml" and isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:
        raise KeyProblem("cannot hold an integer beyond 64 bits in TOML (-2**63 to 2**63 - 1)")
    if isinstance(value, (bool, int, float)):
        return number(value, old, old_text, fmt)
    if isinstance(value, str):
        return {"yaml": yaml_string, "toml": toml_string}.get(fmt, lambda s, _: json.dumps(s, ensure_ascii=False))(
            value, style)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline(v, fmt, depth=depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if fmt == "toml":
            return "{" + ", ".join(f"{toml_string(k)} = {inline(v, fmt, depth=depth + 1)}"
                                   for k, v in value.items()) + "}" if value else "{}"
        key = yaml_string if fmt == "yaml" else (lambda s: json.dumps(s, ensure_ascii=False))
        return "{" + ", ".join(f"{key(k)}: {inline(v, fmt, depth=depth + 1)}" for k, v in value.items()) + "}"
    raise KeyProblem(f"cannot write a {type(value).__name__} in a {fmt.upper()} file")


def json_block(value: Any, indent: str, unit: str) -> str:
    """A JSON list or table over several lines, indented as the file is (`unit` per level)."""
    text = json.dumps(value, ensure_ascii=False, indent=unit)
    return text.replace("\n", "\n" + indent)


def indent_unit(text: str) -> str:
    m = re.search(r"\n([ \t]+)\S", text)
    return m.group(1) if m else "  "


def render(fmt: str, value: Any, slot: Slot, text: str) -> str:
    """The text that replaces ``text[slot.start:slot.end]``."""
    old_text = text[slot.start:slot.end]
    if fmt == "json" and isinstance(value, (list, dict)) and slot.multiline and value:
        return json_block(value, slot.indent, indent_unit(text))
    if slot.style == "empty":  # a YAML null written as nothing: the value after its indicator, one space apart
        return " " + inline(value, fmt, slot.value, old_text, "")
    out = inline(value, fmt, slot.value, old_text, slot.style)
    if fmt == "yaml" and slot.style == "block" and not text[text.rfind("\n", 0, slot.start) + 1:slot.start].strip():
        out = "  " + out  # a block list or table on its own line: the flow form goes deeper than its key
    return out


def shown(value: Any, fmt: str = "json") -> str:
    """A value on one line, for ``--collect-only``, results and the journal (at most 80 characters)."""
    try:
        text = inline(value, "yaml" if fmt == "yaml" else "json")
    except KeyProblem:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def insert(fmt: str, text: str, missing: Missing, segments: tuple, value: Any) -> str:
    """`text` with the missing key added to the table it was looked up in (allow_new), read back
    to make sure it holds the new key and parses (a layout that defeats the insertion is refused)."""
    out = _inserted(fmt, text, missing, segments, value)
    try:
        data = _load(fmt, out)
        for seg in segments:
            data = data[seg.index] if isinstance(data, list) else data[seg.name]
        ok = data == value or (data is None and value is None)
    except Exception:  # the format's own error, a key that is not there: either way, not written
        ok = False
    if not ok:
        raise KeyProblem("cannot be added to that table as the file is laid out (add it by hand, or with replace)")
    return out


def _load(fmt: str, text: str) -> Any:
    if fmt == "json":
        return json.loads(text)
    if fmt == "toml":
        import tomllib

        return tomllib.loads(text)
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def _inserted(fmt: str, text: str, missing: Missing, segments: tuple, value: Any) -> str:
    """The new key's line (YAML: after the table's last entry, at its keys' column; a flow table
    gains ``, key: value``), member (JSON: indented as the first member) or tomlkit's placement."""
    rest = segments[len(missing.found):]
    nested = value
    for seg in reversed(rest[1:]):
        nested = {seg.name: nested}
    key = rest[0].name
    if fmt == "toml":
        inline(value, "toml")  # refuses what TOML cannot hold (null), in its own words
        return toml_write(text, segments, value)
    newline = "\r\n" if "\r\n" in text else "\n"
    if fmt == "json":
        start, end = missing.container
        first = text[start + 1:len(text) - len(text[start + 1:].lstrip())]
        head = f"{inline(key, 'json')}: "
        if not text[start + 1:end - 1].strip():
            return text[:start + 1] + head + inline(nested, "json") + text[end - 1:]
        member = first[first.rfind("\n") + 1:] if "\n" in first else ""
        body = (json_block(nested, member, indent_unit(text)) if "\n" in first and isinstance(nested, (list, dict))
                and nested else inline(nested, "json"))
        at = len(text[:end - 1].rstrip())
        return text[:at] + "," + (first or " ") + head + body + text[at:]
    node = missing.container
    entry = f"{inline(key, 'yaml')}: {inline(nested, 'yaml')}"
    if node.flow_style:
        end = node.end_mark.index
        close = text.rfind("}", 0, end)
        return text[:close] + (", " if node.value else "") + entry + text[close:]
    column = node.value[0][0].start_mark.column
    last = yaml_end(node)
    if text[last - 1:last] == "\n":
        at = last
    else:
        at = text.find("\n", last)
        at = len(text) if at < 0 else at + 1
    lead = "" if at == 0 or text[at - 1:at] == "\n" else newline
    return text[:at] + lead + " " * column + entry + newline + text[at:]
