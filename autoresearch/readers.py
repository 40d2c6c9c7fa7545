"""Reading hypothesis files: the TOML collector and the Python collector (imported under a time limit)."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import threading
import tomllib
import traceback
from pathlib import Path
from typing import Any

from autoresearch.errors import CollectError, OutputClosed, Terminated
from autoresearch.model import Hypothesis, build
from autoresearch.kinds import registry

BOM = "\ufeff"  # a UTF-8 byte-order mark, as some editors write it: read past, as Python does


def decorates(text: str) -> bool:
    """Whether a Python file decorates something with autoresearch's @hypothesis, under its own
    name or an alias (``from autoresearch import hypothesis as idea``, ``import autoresearch as ar``):
    only such a file is imported; a helper module or a script never is."""
    names = ["hypothesis", *re.findall(r"\bhypothesis\s+as\s+(\w+)", text)]
    modules = ["autoresearch", *re.findall(r"^\s*import\s+autoresearch\s+as\s+(\w+)", text, re.MULTILINE)]
    marker = (rf"^\s*@\s*(?:(?:{'|'.join(modules)})\s*\.\s*hypothesis|(?:{'|'.join(names)}))\b")
    return re.search(marker, text, re.MULTILINE) is not None


def _locator(text: str, start: int = 0):
    lines = text.splitlines()

    def locate(key: str) -> int:
        pattern = re.compile(rf'^\s*(?:\[+\s*)?"?{re.escape(key)}"?\s*(?:=|\]|\.)')
        for i in range(start, len(lines)):
            if pattern.match(lines[i]):
                return i + 1
        return start + 1

    return locate


def collect_toml(path: Path, rel: str, max_sweep: int | None = None, kinds: tuple | None = None) -> list[Hypothesis]:
    try:
        text = path.read_bytes().decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError:
        raise CollectError(rel, 1, "not UTF-8 text (TOML files must be UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise CollectError(rel, 1, "invalid TOML: arrays or tables nested too deep (at most a few levels "
                                   "make sense in a hypothesis)") from None
    except ValueError as exc:  # TOMLDecodeError, and an integer of more digits than Python converts
        if not isinstance(exc, tomllib.TOMLDecodeError):
            raise CollectError(rel, 1, f"invalid TOML: {str(exc)[:120]} (integers within ±2**63)") from None
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else 1
        if BOM in (text.splitlines()[line - 1:line] or [""])[0]:
            raise CollectError(rel, line, "invalid TOML: a byte-order mark (U+FEFF) in the middle of the file (only "
                                          "its very start may hold one; delete it)") from None
        raise CollectError(rel, line, f"invalid TOML: {msg[:m.start()].strip() if m else msg} "
                                      "(see toml.io; strings need quotes)") from None
    if "hypotheses" not in data:
        return build(data, rel, 1, path.stem, _locator(text), max_sweep, kinds)
    tables = data["hypotheses"]
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise CollectError(rel, _locator(text)("hypotheses"), "hypotheses must be an array of tables ([[hypotheses]])")
    defaults = {k: v for k, v in data.items() if k != "hypotheses"}
    starts = [i for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[\s*hypotheses\s*\]\]", line)]
    merged = ("expect", *(kind.name for kind in kinds or registry()))  # tables that merge with the defaults
    out = []
    for i, table in enumerate(tables):
        start = starts[i] if i < len(starts) else 0
        if "name" not in table:
            raise CollectError(rel, start + 1, "each [[hypotheses]] table needs a name (name = \"...\")")
        raw = {**defaults, **table}
        for key in merged:  # [set], [expect], a kind's table: merged with the file's defaults
            if isinstance(defaults.get(key), dict) and isinstance(table.get(key), dict):
                raw[key] = {**defaults[key], **table[key]}
        out += build(raw, rel, start + 1, table["name"], _locator(text, start), max_sweep, kinds)
    return out


def collect_python(path: Path, rel: str, config) -> list[Hypothesis]:
    text = path.read_text(encoding="utf-8", errors="replace").removeprefix(BOM)
    if not decorates(text):
        return []  # a helper module or a script: never imported
    if not config.get("python_hypotheses"):
        raise CollectError(rel, 1, "Python hypothesis files are turned off (python_hypotheses = false); "
                                   "write hypotheses as TOML")
    limit = _get(config, "collect_timeout", 30.0)
    try:
        with time_limit(limit):
            return _import_hypotheses(path, rel, config)
    except _TimeUp as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _same_file(f.filename, path)]
        line = frames[-1].lineno if frames and frames[-1].lineno else 1
        raise CollectError(rel, line, f"still running after {limit:g} s (collect_timeout): a hypothesis file "
                                      "should only define functions; move slow work into the workload") from None


def _get(config, name: str, default: Any) -> Any:
    try:
        value = config.get(name)
    except (KeyError, AttributeError):
        return default
    return default if value is None else value


def _same_file(filename: str, path: Path) -> bool:
    return os.path.realpath(filename) == os.path.realpath(path)


def _import_hypotheses(path: Path, rel: str, config) -> list[Hypothesis]:
    """Import one Python hypothesis file and turn its decorated functions into hypotheses."""
    from autoresearch.decorator import MARKED, from_function, hidden, line_of

    modname = "autoresearch_hypotheses." + re.sub(r"\W", "_", rel)
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(modname, None)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # leave the experiments folder as it was
    MARKED[modname] = []
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        if exc.filename and not _same_file(exc.filename, path):  # in a module it imports: name the import
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if _same_file(f.filename, path)]
            line = frames[-1].lineno if frames and frames[-1].lineno else 1
            raise CollectError(rel, line, f"raised SyntaxError on import: {exc.msg} in {Path(exc.filename).name} "
                                          f"line {exc.lineno}") from None
        raise CollectError(rel, exc.lineno or 1, f"syntax error: {exc.msg}") from None
    except (_TimeUp, KeyboardInterrupt, Terminated, OutputClosed):  # a stop while it imports is the command's
        raise
    except BaseException as exc:  # trusted but fallible code: report where it failed
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _same_file(f.filename, path)]
        line = frames[-1].lineno if frames and frames[-1].lineno else 1
        raise CollectError(rel, line, f"raised {type(exc).__name__} on import: {exc}") from None
    finally:
        sys.dont_write_bytecode = dont_write
        marked = MARKED.pop(modname, [])
    functions = [v for v in vars(module).values() if callable(v) and hasattr(v, "__autoresearch_hypothesis__")
                 and getattr(v, "__module__", None) == modname]
    lost = hidden(marked, functions, vars(module))
    if lost:
        raise CollectError(rel, *lost)
    out = []
    kinds = registry(config)
    for fn in sorted(functions, key=line_of):
        out += from_function(fn, rel, config.get("max_sweep"), kinds)
    return out


class _TimeUp(BaseException):
    """Raised in the main thread by SIGALRM when a Python hypothesis file runs past collect_timeout."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`_TimeUp` in this thread once `seconds` have passed (a real-time timer and
    SIGALRM), never after the block is left. Where SIGALRM cannot be used (not the main thread, no
    SIGALRM on this platform, or someone else's handler installed), no limit.

    Python drops an exception raised where it cannot raise (a ``__del__``, a weakref or gc callback,
    some C code): the timer goes on firing every 0.2 s and raises again until the block is left,
    unless the one raised is on its way out (being handled: cleaning up); the dropped ones are not
    printed ("Exception ignored")."""
    import signal

    usable = (hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN))
    if not usable:
        yield
        return
    armed = [True]

    def expire(signum, frame) -> None:
        if armed[0] and not _handling(_TimeUp):  # a signal delivered late, once the block is left, does nothing
            raise _TimeUp()

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, _TimeUp):
            hook(unraisable)

    previous, hook = signal.signal(signal.SIGALRM, expire), sys.unraisablehook
    sys.unraisablehook = quiet
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if sys.unraisablehook is quiet:
            sys.unraisablehook = hook


def _handling(kind: type[BaseException]) -> bool:
    """Whether an exception of `kind` is being handled here (an except or finally block on its way out)."""
    exc, seen = sys.exc_info()[1], set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False
