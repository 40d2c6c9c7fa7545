"""watch: ``--watch``, the seed's LOOP FOREVER. When the queue is empty, wait for new or changed
hypothesis files and hand them to the run loop; the same content never runs twice.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.collect import collect
from autoresearch.config import positive
from autoresearch.errors import UsageError


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("--watch", action="store_true",
                     help="after the collected hypotheses, keep watching PATHS and run each new or changed "
                          "hypothesis as it appears, until interrupted (the seed's LOOP FOREVER)")
    parser.addsetting("watch_interval", type="float", default=2.0, help="seconds between checks in --watch mode",
                      check=positive)


class Watcher:
    """Polls the paths; a file is re-read only when its size or modification time changes, and a
    file with an error is reported once and skipped until it changes again."""

    #: seconds between the idle lines when the output is not a terminal (a log an agent reads)
    IDLE_EVERY = 300.0

    def __init__(self, config) -> None:
        self.config = config
        self.seen: dict[str, tuple[int, int]] = {}
        self.told = 0.0  # when the last idle line was written (piped output)

    def idle(self, session, first: bool) -> None:
        """Say that the runner is waiting: once, "watching N paths ...", when the queue empties;
        then the time since the last result, in place on a terminal, every IDLE_EVERY seconds in a log."""
        from autoresearch.live import fmt_s
        from autoresearch.collect import relpath

        terminal = self.config.pluginmanager.get_plugin("terminal-reporter")
        if terminal is None or terminal.verbosity < 0:
            return
        try:  # the ledger's last line records the last result (its "logged" line follows it at once)
            last = session.ledger.path.stat().st_mtime
        except OSError:
            last = session.started
        since = f"last result {fmt_s(max(0.0, time.time() - last))} ago" if session.history else "no result yet"
        n = len(session.paths)
        where = ", ".join(relpath(p, self.config.rootdir) for p in session.paths)
        if first:
            terminal.write(f"watching {n} path{'s' if n != 1 else ''} ({where}) for new or changed hypothesis "
                           f"files, every {self.config.get('watch_interval'):g}s; {since} (Ctrl-C stops)")
            self.told = time.time()
        elif terminal.tty:
            with terminal.lock:
                terminal.emit(f"\r\033[Kidle: {since}")
        elif time.time() - self.told >= self.IDLE_EVERY:
            terminal.write(f"idle: still watching {where}; {since}")
            self.told = time.time()

    def changed(self, paths: list[Path]) -> bool:
        changed = False
        try:
            for path in paths:
                for file in (path.rglob("*") if path.is_dir() else [path]):
                    if file.suffix not in (".toml", ".py") or not file.is_file():
                        continue
                    st = file.stat()
                    stamp = (st.st_mtime_ns, st.st_size)
                    if self.seen.get(str(file)) != stamp:
                        self.seen[str(file)] = stamp
                        changed = True
        except OSError:
            changed = True
        return changed

    @hookimpl
    def autoresearch_collection_finish(self, session) -> None:
        self.changed(session.paths)  # what was collected at the start counts as seen

    @hookimpl
    def autoresearch_queue_empty(self, session):
        config = self.config
        self.idle(session, first=True)
        while True:
            if self.changed(session.paths):
                try:
                    items, errors = collect(config, session.paths, config.hook)
                    config.hook.autoresearch_collection_modifyitems(session=session, config=config, items=items)
                except UsageError as exc:
                    items, errors = [], []
                    print(f"autoresearch: {exc}", file=sys.stderr)
                for err in errors:
                    print(f"ERROR {err}", file=sys.stderr)
                bad = {e.path for e in errors}
                new = [h for h in items if h.key not in session.dispatched and h.path not in bad]
                if new:
                    if getattr(self.config.pluginmanager.get_plugin("terminal-reporter"), "tty", False):
                        self.config.pluginmanager.get_plugin("terminal-reporter").emit("\r\033[K")
                    return new
            time.sleep(config.get("watch_interval"))
            self.idle(session, first=False)


@hookimpl
def autoresearch_configure(config) -> None:
    if config.getoption("watch"):
        config.pluginmanager.register(Watcher(config), "watch-session")
