"""The journal's markers: the invisible end of every entry, ``<!-- autoresearch TAG SEQ KIND -->``.

The journal plugin (plugins/journal.py) writes them, and counts them to give every PLANNED entry
exactly one COMPLETED (or interrupted) one across any stop; ``export`` reads them to carry one run's
entries only (share.py). Here, in the core, so that neither depends on the other.
"""
from __future__ import annotations

import re


def marker(tag: str, seq: int, kind: str) -> str:
    """The invisible end of an entry: which run's experiment, and which half of its record."""
    return f"<!-- autoresearch {tag} {seq} {kind} -->\n"


MARKER = re.compile(r"<!-- autoresearch (\S+) (\d+) (planned|completed|redispatched) -->\n?")


def inert(text: str) -> str:
    """An entry's own text, where a hypothesis' words cannot pass for a marker (nor hide what follows):
    an HTML comment opener is written as an entity (Markdown still shows it as typed)."""
    return text.replace("<!--", "&lt;!--")


def entries_of(text: str, tag: str) -> str:
    """The journal as run `tag` sees it: its header and that run's entries only (each entry ends with
    its marker; text that ends with none, from before markers, belongs to no run)."""
    first = text.find("\n### ")
    head, rest = (text[:first], text[first:]) if first >= 0 else (text, "")
    out, start = [head], 0
    for m in MARKER.finditer(rest):
        if m.group(1) == tag:
            out.append(rest[start:m.end()])
        start = m.end()
    return "".join(out)
