"""``--watch``: the seed's LOOP FOREVER. New or changed hypothesis files run as they appear."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator

from autoresearch.collect import collect
from autoresearch.errors import UsageError
from autoresearch.model import Hypothesis


def watch(session, done: set[str]) -> Iterator[Hypothesis]:
    """Yield hypotheses not run before (by content), polling the paths until interrupted.

    A file is re-read only when its size or modification time changes; a file with an error
    is reported once and skipped until it changes again.
    """
    config = session.config
    paths = [Path(p) for p in session.paths]
    seen: dict[str, tuple[int, int]] = {}
    interval = config.get("watch_interval")
    while True:
        changed = False
        try:
            for path in paths:
                for file in (path.rglob("*") if path.is_dir() else [path]):
                    if file.suffix not in (".toml", ".py") or not file.is_file():
                        continue
                    st = file.stat()
                    stamp = (st.st_mtime_ns, st.st_size)
                    if seen.get(str(file)) != stamp:
                        seen[str(file)] = stamp
                        changed = True
        except OSError:
            changed = True
        if changed:
            try:
                items, errors = collect(config, paths, config.hook)
            except UsageError as exc:
                items, errors = [], []
                print(f"autoresearch: {exc}", file=sys.stderr)
            for err in errors:
                print(f"ERROR {err}", file=sys.stderr)
            bad = {e.path for e in errors}
            for h in items:
                if h.key not in done and h.path not in bad:
                    done.add(h.key)
                    yield h
        time.sleep(interval)
