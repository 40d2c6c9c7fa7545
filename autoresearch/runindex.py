"""A run's indexes: what a read-only command (``status``, ``report``) derived from the run's ledger,
kept beside it (``.autoresearch/runs/TAG/index-KIND.json``) so that the next call reads one small
file instead of replaying the whole ledger.

The ledger stays the one store: an index is a cache of what it says, bound to it. Its first line
is the SHA-256 of everything the data was made from (the ledger's size and the SHA-256 of its bytes,
the tag, every setting's value, the code as :func:`autoresearch.startup.code_id` sees it) and of
the data that follows; an index whose line does not match the ledger and settings of now (stale:
the run went on, a setting or the code changed), or its own data (edited), is ignored and made
again from a replay of the ledger. It lives in the state folder, which the workload never sees
(autoresearch/isolation.py hides it), as the ledger does. Even where a workload could write there
(the sandbox off), what it wrote is stale before anyone reads it: the runner appends the
experiment's own "done" and "logged" lines after the workload ends, and no index written before
them matches the ledger after them. Like the ledger's hash chain, the binding detects a stale or
hand-edited index, not a forger who recomputes the hashes of the final ledger by hand.

An index is written only when the ledger did not change while the data was made (a runner
appending meanwhile): never one that describes more, or less, than the bytes it is bound to.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

SAFE_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # session.TAG: anything else takes the full path


def run_dir(config: Any, tag: str | None) -> Path | None:
    """The folder of the run `tag` (default: the current run), or None when it is not a plain one
    (the command's own path then says what is wrong)."""
    if not tag:
        try:
            tag = (config.state_dir / "current").read_text(errors="replace").strip()
        except OSError:
            return None
    if not SAFE_TAG.fullmatch(tag) or ".." in tag or tag.endswith((".", ".lock")):
        return None
    return config.state_dir / "runs" / tag


def stamp(folder: Path, kind: str, config: Any) -> str | None:
    """What an index of `kind` in `folder` must be bound to now (None: no ledger to bind to)."""
    try:
        data = (folder / "ledger.jsonl").read_bytes()
    except OSError:
        return None
    from autoresearch.startup import code_id

    parts = [kind, folder.name, str(len(data)), hashlib.sha256(data).hexdigest(), code_id(),
             repr(sorted(config.settings().items()))]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "backslashreplace")).hexdigest()


def read(folder: Path, kind: str, bound: str) -> Any:
    """The data of the index of `kind` in `folder` if it is bound to `bound` and unedited, else None."""
    try:
        text = (folder / f"index-{kind}.json").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    head, _, body = text.partition("\n")
    if head != _seal(bound, body):
        return None
    try:
        return json.loads(body)["data"]
    except (ValueError, KeyError, TypeError):
        return None


def write(folder: Path, kind: str, bound: str, body: str, again: Callable[[], str | None]) -> None:
    """Keep `body` (the JSON of ``{"data": ...}``) as the index of `kind`, if what it was made from
    is still what `bound` describes (`again()`: the binding of now); nothing when the folder cannot
    be written."""
    if again() != bound:
        return
    target = folder / f"index-{kind}.json"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(_seal(bound, body) + "\n" + body, encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)


def cached(config: Any, tag: str | None, kind: str, make: Callable[[], Any]) -> Any:
    """`make()`'s data (JSON-able), from the index of `kind` when it matches the ledger, else made
    and kept. Always returned as read back from JSON, so a call that made it and one that read it
    return equal data."""
    folder = run_dir(config, tag)
    bound = stamp(folder, kind, config) if folder is not None else None
    if bound is None:
        return json.loads(json.dumps(make(), default=str))
    found = read(folder, kind, bound)
    if found is not None:
        return found
    body = json.dumps({"data": make()}, default=str)
    write(folder, kind, bound, body, lambda: stamp(folder, kind, config))
    return json.loads(body)["data"]


def _seal(bound: str, body: str) -> str:
    return hashlib.sha256(f"{bound}\0{body}".encode("utf-8", "backslashreplace")).hexdigest()
