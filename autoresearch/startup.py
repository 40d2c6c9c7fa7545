"""The built-in plugins' settings and hooks as data, so that a command that needs no plugin starts
without importing them: ``--help``, ``status``, ``show`` and ``diff``.

Every command that loads the plugins records, as it declares them, what each built-in plugin's
``autoresearch_addoption`` declared (each ``addsetting`` and ``addoption`` call, with its owner)
and which hooks each built-in plugin implements. That record is kept beside the bytecode
(``autoresearch/__pycache__/startup.<tag>.marshal``), keyed by the size and modification time of
every source file of ``autoresearch/`` and ``plugins/``, the Python version and the day (the
``--tag`` help names today): any edit, upgrade or new day makes a new one. A light command replays
the calls on a fresh :class:`~autoresearch.config.Parser`; a setting's ``check`` (or an option's
``type``) defined in a module not imported yet is a :class:`Deferred` that imports its plugin on
first use. Hooks load the built-in plugins that implement them, on first call (:class:`Plugins`).

Whenever anything besides the built-in plugins is involved (``-p``, a ``conftest.py``, an
installed plugin's entry point) or no fresh record exists, every command loads the plugins as
before. ``python -X importtime -m autoresearch --help`` shows what a start costs.
"""
from __future__ import annotations

import marshal
import os
import sys
import time
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "autoresearch"
#: The commands that need no plugin to start: their hooks, if any, load the plugins they call.
LIGHT = {None, "status", "show", "diff"}
REF = "\0ref"  # marks a callable in a recorded call: (REF, module, qualname)
_memo: dict[str, Any] = {}


def command_of(argv: list[str]) -> tuple[str | None, bool]:
    """The command `argv` names (its first word not an option), and whether an option comes before it
    (``--help status``: the run's options are then shown too)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return arg, i > 0
    return None, bool(argv)


def sources() -> list[Path]:
    """The folders of the product's code: autoresearch/ (with commands/ and patches/) and plugins/."""
    import importlib.util

    here = Path(__file__).parent
    spec = importlib.util.find_spec("autoresearch.plugins")
    plugins = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return [here, *(p for p in here.iterdir() if p.is_dir() and (p / "__init__.py").is_file()), *plugins]


def fingerprint() -> str:
    """What the record depends on: every source file's size and modification time, the Python and
    the day."""
    parts = [sys.version, time.strftime("%Y-%m-%d")]
    for folder in sources():
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.endswith(".py"):
                        st = entry.stat()
                        parts.append(f"{entry.path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{folder}:missing")
    return "\n".join(sorted(parts))


_command: list[str | None] = [None]  # the fingerprint, as the command running now first computed it


def begin_command() -> None:
    """A command starts (autoresearch.cli): the code is looked at again on first use."""
    _command[0] = None


def code_id() -> str:
    """:func:`fingerprint`, computed once per command: the record and the run's indexes
    (autoresearch/runindex.py) ask for it in one start."""
    if _command[0] is None:
        _command[0] = fingerprint()
    return _command[0]


def path() -> Path:
    return Path(__file__).parent / "__pycache__" / f"startup.{sys.implementation.cache_tag}.marshal"


def read() -> dict[str, Any] | None:
    """The record, if there is one for the code as it is now."""
    key = code_id()
    if key in _memo:
        return _memo[key]
    try:
        data = marshal.loads(path().read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    _memo.clear()
    _memo[key] = data
    return data


def externals(rootdir: Path, argv: list[str]) -> bool:
    """Whether anything besides the built-in plugins loads: -p, a conftest.py, an installed plugin."""
    load, block = preparse_plugins(argv)
    return bool(load or block or (rootdir / "conftest.py").is_file() or entry_points(ENTRY_POINT_GROUP))


def light(rootdir: Path, argv: list[str], command: str | None, manager: Any) -> tuple[Any, Any] | None:
    """(plugins, parser) for a command that needs no plugin to start, from the record; None when the
    plugins must load (another command, something besides the built-in plugins, or no record).
    `manager` makes an empty plugin manager, for the hooks a light command calls."""
    if command not in LIGHT:
        return None
    data = read()
    if data is None or externals(rootdir, argv):
        return None
    return Plugins(data, manager), replay(data)


def entry_points(group: str) -> list[tuple[str, str]]:
    """(name, "module:attr") of the installed packages' entry points in `group`.

    What ``importlib.metadata.entry_points(group=...)`` answers, read straight from each
    ``*.dist-info/entry_points.txt`` on sys.path (the first distribution of a name wins): the
    same files, without importing importlib.metadata and the email package, a third of the
    start-up time of ``autoresearch --help``. What a folder of sys.path declares is kept beside the
    bytecode until the folder changes (a package installed or removed changes its time).
    """
    kept = _read_folders(group)
    found: dict[str, str] = {}
    seen_dists: set[str] = set()
    changed = False
    for entry in sys.path:
        folder = os.path.abspath(entry or ".")
        try:
            stamp = os.stat(folder).st_mtime_ns
        except OSError:
            continue
        if kept.get(folder, (None,))[0] != stamp:
            racy = time.time_ns() - stamp < 2_000_000_000  # changed again within its clock's tick: look again
            kept[folder], changed = (None if racy else stamp, _declared(folder, group)), True
        for project, entries in kept[folder][1]:
            if project not in seen_dists:
                seen_dists.add(project)
                for name, value in entries:
                    found.setdefault(name, value)
    if changed:
        _write(path().with_name(f"folders-{group}.{sys.implementation.cache_tag}.marshal"), kept)
    return list(found.items())


def _declared(folder: str, group: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """(project, its entry points in `group`) of each distribution in `folder`, in name order."""
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info")))
    except OSError:
        return []
    out = []
    for dist in names:
        project = dist.rsplit("-", 1)[0].lower().replace("_", "-") if dist.endswith(".dist-info") else dist
        entries, section = [], ""
        try:
            text = Path(folder, dist, "entry_points.txt").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif section == group and "=" in line and not line.startswith(("#", ";")):
                name, value = (part.strip() for part in line.split("=", 1))
                entries.append((name, value.split("[")[0].strip()))  # "module:attr [extra]"
        out.append((project, tuple(entries)))
    return out


def _read_folders(group: str) -> dict[str, Any]:
    try:
        kept = marshal.loads(path().with_name(f"folders-{group}.{sys.implementation.cache_tag}.marshal").read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _write(target: Path, data: Any) -> None:
    """Write `data` (marshal) to `target` atomically; nothing when bytecode is not written, or cannot be."""
    if sys.dont_write_bytecode:
        return
    try:
        blob = marshal.dumps(data)
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, target)
    except (OSError, ValueError):  # read-only install, or a value marshal cannot keep
        pass


def preparse_plugins(args: list[str]) -> tuple[list[str], list[str]]:
    """The ``-p NAME`` and ``-p no:NAME`` arguments, read before the full parse."""
    load, block = [], []
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        if arg == "-p" and i + 1 < len(args):
            value = args[i + 1]
            next(it, None)
        elif arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--"):
            value = arg[2:].lstrip("=")
        else:
            continue
        (block.append(value[3:]) if value.startswith("no:") else load.append(value))
    return load, block


class Recorder:
    """Notes every ``addsetting`` / ``addoption`` call made on `parser`, and the plugin module
    whose ``autoresearch_addoption`` made it, while the plugins declare their settings."""

    def __init__(self, parser: Any) -> None:
        self.parser, self.calls, self.ok = parser, [], True
        setting, option = parser.addsetting, parser.addoption
        parser.addsetting = lambda name, *flags, **kw: (self.note("setting", (name, *flags), kw), setting(name, *flags, **kw))
        parser.addoption = lambda *flags, **kw: (self.note("option", flags, kw), option(*flags, **kw))

    def note(self, kind: str, args: tuple, kwargs: dict[str, Any]) -> None:
        frame, owner = sys._getframe(2), None
        while frame is not None:
            if frame.f_code.co_name == "autoresearch_addoption":
                owner = frame.f_globals.get("__name__")
                break
            frame = frame.f_back
        if owner is None:
            self.ok = False
        ordinal = sum(1 for c in self.calls if c[0] == owner)
        self.calls.append((owner, ordinal, kind, args, {k: encode(v) for k, v in kwargs.items()}))

    def close(self) -> None:
        del self.parser.addsetting, self.parser.addoption


def encode(value: Any) -> Any:
    if callable(value):
        return (REF, getattr(value, "__module__", "") or "", getattr(value, "__qualname__", "") or "")
    return value


def save(pm: Any, recorder: Recorder, builtin: dict[str, str]) -> None:
    """Keep what the `builtin` plugins (name: module) declared and which hooks each implements
    (nothing is kept when something else is loaded, or a value cannot be kept as data)."""
    recorder.close()
    if not recorder.ok:
        return
    plugins = [(name, modname) for name, modname in builtin.items() if pm.get_plugin(name)]
    if sorted(pm.list_name_plugin()) != sorted((n, pm.get_plugin(n)) for n, _ in plugins):
        return  # a plugin that is not built in
    hooks = {name: sorted(c.name for c in pm.get_hookcallers(pm.get_plugin(name)) or ()) for name, _ in plugins}
    data = dict(key=fingerprint(), plugins=plugins, hooks=hooks, calls=recorder.calls)
    _write(path(), data)
    _memo.clear()


def replay(data: dict[str, Any]) -> Any:
    """A Parser declaring what the built-in plugins declared, without importing them."""
    from autoresearch.config import Parser

    parser = Parser()
    for owner, ordinal, kind, args, kwargs in data["calls"]:
        kw = {k: decode(v, owner, ordinal, k) for k, v in kwargs.items()}
        (parser.addsetting if kind == "setting" else parser.addoption)(*args, **kw)
    return parser


def decode(value: Any, owner: str, ordinal: int, key: str) -> Any:
    if not (isinstance(value, tuple) and len(value) == 3 and value[0] == REF):
        return value
    _, module, qualname = value
    if module in sys.modules and "<" not in qualname:
        found: Any = sys.modules[module]
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is not None:
            return found
    deferred = Deferred(owner, ordinal, key, qualname.rsplit(".", 1)[-1])
    return deferred.resolve() if key == "action" else deferred  # argparse needs the class itself


class Deferred:
    """A setting's check (or an option's type) whose plugin is not imported yet: imported on first use,
    by declaring that plugin's settings again."""

    def __init__(self, owner: str, ordinal: int, key: str, name: str) -> None:
        self.owner, self.ordinal, self.key, self.__name__ = owner, ordinal, key, name
        self.found: Any = None

    def resolve(self) -> Any:
        if self.found is None:
            import importlib

            from autoresearch.config import Parser

            parser = Parser()
            recorder = Recorder(parser)
            calls: list[tuple] = []
            original = recorder.note
            recorder.note = lambda kind, args, kwargs: calls.append(kwargs) or original(kind, args, kwargs)
            importlib.import_module(self.owner).autoresearch_addoption(parser=parser)
            recorder.close()
            self.found = calls[self.ordinal][self.key]
        return self.found

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.key} {self.__name__} of {self.owner}, imported on first use>"


class Plugins:
    """Stands in for the plugin manager of a light command: a hook called loads the built-in plugins
    that implement it (with the others loaded so far, registered again in their usual order), and
    anything else asked of it loads them all."""

    def __init__(self, data: dict[str, Any], manager: Any) -> None:
        self.data, self.factory, self.loaded, self.pm = data, manager, [], None
        self.hook = _Hooks(self)

    def manager(self, hook: str | None) -> Any:
        want = [(name, mod) for name, mod in self.data["plugins"]
                if hook is None or (name, mod) in self.loaded or hook in self.data["hooks"].get(name, ())]
        if self.pm is None or want != self.loaded:
            pm = self.factory()
            for name, modname in want:
                pm.import_plugin(name, modname)
            self.pm, self.loaded = pm, want
        return self.pm

    def __getattr__(self, name: str) -> Any:
        return getattr(self.manager(None), name)


class _Hooks:
    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plugins.manager(name).hook, name)
