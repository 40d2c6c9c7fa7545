"""Whatever a ledger says (an imported archive's, or one the candidate reached), everything the
morning-after commands show is escaped: no control character, no terminal escape, no bidi
override reaches the terminal, and the command answers (a clear exit, never a traceback).

The property: any string anywhere in a finished run's ledger (values and keys, every entry)
replaced by hostile text; the ledger chained anew, as a forger would; then status, report, show
and diff, in text and JSON, print nothing unescaped.
"""
from __future__ import annotations

import json
import shutil
import unicodedata

from hypothesis import HealthCheck, given, settings, strategies as st

from test_share import finished_run, rechain

HOSTILE = st.lists(st.sampled_from([
    "\x1b]52;c;cm0gLXJmIH4K\x07", "\x1b[2J", "\x1b[31m", "\x9b2J", "\x07", "\x00", "\r", "\x7f", "\x08",
    "\u202e", "\u2066", "\x1bP+q\x1b\\", "a", "é", "\t", "\n", "%s", "{0}", "|", "`", "<script>", " "]),
    min_size=1, max_size=4).map("".join)

COMMANDS = (("status",), ("status", "--json"), ("report",), ("report", "--json"), ("show",),
            ("show", "--json"), ("show", "--md"), ("show", "--csv"), ("diff", "a_lr", "b_worse"),
            ("diff", "a_lr", "b_worse", "--json"))


def unsafe(text: str) -> list[str]:
    """The characters in `text` a terminal would act on (newline and tab are the output's own)."""
    return [c for c in text if c not in "\n\t" and (unicodedata.category(c) in ("Cc", "Cf") or c == "\x7f")]


def strings_of(value, path=()):
    """Every string in a JSON value, by its path (a key is reached as ("key", name))."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield path + (("key", k),)
            yield from strings_of(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_of(v, path + (i,))


def replaced(value, path, text):
    if not path:
        return text
    head, rest = path[0], path[1:]
    if isinstance(head, tuple):  # a key: renamed, its value kept
        return {(text if k == head[1] else k): v for k, v in value.items()}
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, text)}
    return [replaced(v, rest, text) if i == head else v for i, v in enumerate(value)]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_string_in_the_ledger_is_shown_escaped_by_every_command(repo, cli, data):
    ledger = repo / ".autoresearch" / "runs" / "t1" / "ledger.jsonl"
    if not ledger.exists():
        finished_run(repo, cli)
        shutil.copy(ledger, ledger.with_suffix(".orig"))
    entries = [json.loads(line) for line in ledger.with_suffix(".orig").read_text().splitlines() if line]
    for _ in range(data.draw(st.integers(1, 6), label="strings changed")):
        i = data.draw(st.integers(0, len(entries) - 1), label="entry")
        paths = [p for p in strings_of(entries[i]) if p and p[0] != "prev"]
        if paths:
            path = data.draw(st.sampled_from(paths), label="where")
            entries[i] = replaced(entries[i], path, data.draw(HOSTILE, label="text"))
    ledger.write_bytes(rechain("\n".join(json.dumps(e) for e in entries).encode() + b"\n"))
    for args in COMMANDS:
        r = cli(*args)
        assert r.rc != 3, (args, r)  # 3 is an internal error: a traceback
        bad = unsafe(r.out) + unsafe(r.err)
        assert not bad, (args, bad, r)
