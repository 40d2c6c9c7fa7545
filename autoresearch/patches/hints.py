"""Collection warnings that find silent no-ops of a patch that applies, judged against the command:

- a flag or override the command sets from a placeholder (``--max-iters={budget_steps}``): the
  runner's value wins, so the run never sees the hypothesis' one;
- a ``set`` on an editable file whose constant a config file on the command line sets again
  (nanoGPT's ``python train.py config/x.py``, which train.py ``exec``s after its own defaults);
- ``allow_new`` adding a constant that no editable file (nor the command's scripts) reads:
  a plain-text search for the name beyond its own assignment.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from autoresearch.patches.argv import OVERRIDE_KEY, PLACEHOLDER, override_base, placeholder_flag


def command_files(config) -> list[str]:
    """The project's files the command names (``train.py``, ``config/x.py``, ``--config=c.yaml``),
    relative to the root, in the command's order."""
    return list(_command_files(config.rootdir, tuple(config.get("command") or ())))


@functools.lru_cache(maxsize=8)
def _command_files(rootdir: Path, command: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for arg in command:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if not value or PLACEHOLDER.search(value) or value.startswith("-") or len(value) > 300:
            continue
        try:
            path = (rootdir / value).resolve()
            rel = path.relative_to(rootdir.resolve()).as_posix()
        except (ValueError, OSError):
            continue
        if path.is_file():
            out.append(rel)
    return tuple(out)


def _read(config, rel: str, texts: dict[str, str]) -> str:
    if rel in texts:
        return texts[rel]
    try:
        stat = (config.rootdir / rel).stat()
    except OSError:
        return ""
    return _text(config.rootdir / rel, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _text(path: Path, mtime_ns: int, size: int) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if size < 1 << 20 else ""
    except OSError:
        return ""


def command_warnings(config, h, patch: Any, where) -> list[str]:
    """Warnings for one hypothesis' applied patch; `where(kind, key)` is ``path:line: warning: kind.key``."""
    out = []
    argv = [str(a) for a in config.get("command") or []]
    for name, value in h.patch("args", ()) or ():
        passed = placeholder_flag(argv, name, value)
        if passed:
            out.append(f"{where('args', name)}: the command sets {passed} from a placeholder, which wins (the run "
                       "never sees this change; drop the flag from the hypothesis, or from the command)")
    for key, _ in h.patch("overrides", ()) or ():
        m = OVERRIDE_KEY.fullmatch(key)
        base = m.group(2) if m else key
        own = next((a for a in argv if override_base(a) == base and PLACEHOLDER.search(a)), None)
        if own:
            out.append(f"{where('overrides', key)}: the command sets {own} from a placeholder, which wins (the run "
                       "never sees this change)")
    changes = patch.by_kind.get("set", ())
    if not changes:
        return out
    target = h.file or config.editable[0]
    files = command_files(config)
    for name, old, _ in changes:
        assigns = re.compile(rf"(?m)^[ \t]*{re.escape(name)}[ \t]*(?::[^=\n]*)?=(?!=)")
        later = next((f for f in files if f != target and assigns.search(_read(config, f, patch.before))), None)
        if later and files.index(later) > (files.index(target) if target in files else -1):
            out.append(f"{where('set', name)}: {later}, passed on the command line, sets {name} after {target} does "
                       f"(the run never sees this change; set it in {later}: file = \"{later}\", with {later} "
                       "editable)")
        if old == "(new)":
            word = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
            sources = {**{f: _read(config, f, patch.before) for f in files if f.endswith(".py")}, **patch.before}
            reads = sum(len(word.findall(text)) for path, text in sources.items() if path.endswith(".py"))
            if not reads:
                out.append(f"{where('set', name)}: allow_new adds {name}, which no editable file or script of the "
                           "command reads (a plain-text search finds it nowhere else): the run never sees it")
    return out


CONFIG_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".toml")


def config_from_command(root: Path, command: list[str]) -> str | None:
    """The config file a command passes after its script (``python train.py config/x.py``), if any."""
    seen_script = False
    for arg in command:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if PLACEHOLDER.search(value) or not value or value.startswith("-"):
            continue
        if (root / value).is_file() and not seen_script and value.endswith(".py"):
            seen_script = True
            continue
        if seen_script and (root / value).is_file() and Path(value).suffix in CONFIG_SUFFIXES:
            return Path(value).as_posix()
    return None
