"""The plugin manager: built-in plugins, ``conftest.py``, entry points and ``-p``."""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pluggy

from autoresearch import hookspec
from autoresearch.errors import UsageError
# read before pluggy loads (autoresearch/startup.py), and here as before:
from autoresearch.startup import ENTRY_POINT_GROUP, entry_points, preparse_plugins  # noqa: F401

#: Core plugins: the runner cannot work without them, so ``-p no:NAME`` refuses them.
ESSENTIAL = {name: f"autoresearch.{name}" for name in ("main", "collect", "loop", "isolation", "protocol", "execute", "metrics",
                                                               "smoke")}
#: Built-in plugins shipped in ``plugins/`` (installed as ``autoresearch.plugins``).
BUILTIN = {name: f"autoresearch.plugins.{name}" for name in
           ("git", "device", "verdict", "expect", "exitfirst", "watch", "workers", "ray", "slurm", "results_tsv", "journal",
            "lessons", "terminal", "junitxml", "prune", "mlflow", "cost", "ci", "telemetry", "notify")}


class PluginManager(pluggy.PluginManager):
    def __init__(self) -> None:
        super().__init__("autoresearch")
        self.add_hookspecs(hookspec)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        # As in pytest, a plain function named autoresearch_* is a hook implementation even
        # without the @hookimpl marker.
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("autoresearch_") and callable(getattr(plugin, name, None)):
            return {}
        return opts

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        result = super().register(plugin, name)
        self.check_unknown_hooks(plugin)
        return result

    def check_unknown_hooks(self, plugin: Any) -> None:
        """A plugin implementing a hook that does not exist is an error naming both."""
        known = [n for n, caller in vars(self.hook).items() if n.startswith("autoresearch_") and caller.has_spec()]
        for attr in dir(plugin):
            if attr.startswith("autoresearch_") and callable(getattr(plugin, attr, None)) and attr not in known:
                name = self.get_name(plugin) or repr(plugin)
                self.unregister(plugin)
                import difflib

                close = difflib.get_close_matches(attr, known, n=1)
                raise UsageError(f"plugin {name!r} implements unknown hook {attr!r}"
                                 + (f" (did you mean {close[0]!r}?)" if close else " (see autoresearch.hookspec)"))

    def block(self, name: str) -> None:
        if name in ESSENTIAL:
            raise UsageError(f"-p no:{name}: {name} is essential and cannot be blocked "
                             f"(blockable: {', '.join(BUILTIN)})")
        self.set_blocked(name)

    def import_plugin(self, name: str, modname: str | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", name or ""):
            raise UsageError(f"-p {name!r}: not a module name (a dotted Python name, e.g. -p myplugin or "
                             "-p package.plugin; -p no:NAME blocks one)")
        if self.is_blocked(name) or self.get_plugin(name) is not None:
            return
        modname = modname or name
        try:
            module = importlib.import_module(modname)
        except ImportError as exc:
            if modname == name and name not in sys.modules:
                raise UsageError(f"-p {name}: cannot import plugin module {name!r} ({exc})") from None
            raise
        self.register(module, name)

    def load_conftest(self, rootdir: Path) -> None:
        """The project's ``conftest.py`` is trusted code, loaded as a plugin like pytest's."""
        path = rootdir / "conftest.py"
        if not path.is_file() or self.is_blocked("conftest"):
            return
        spec = importlib.util.spec_from_file_location("autoresearch_conftest", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise UsageError(f"{path}: raised {type(exc).__name__} on import: {exc}") from None
        self.register(module, "conftest")

    def load_entrypoints(self) -> None:
        for name, value in entry_points(ENTRY_POINT_GROUP):
            if self.is_blocked(name) or self.get_plugin(name) is not None:
                continue
            try:
                modname, _, attrs = value.partition(":")
                plugin: Any = importlib.import_module(modname.strip())
                for attr in filter(None, attrs.strip().split(".")):
                    plugin = getattr(plugin, attr)
            except Exception as exc:
                raise UsageError(f"installed plugin {name!r} ({value}) failed to load: "
                                 f"{type(exc).__name__}: {exc} (block it with -p no:{name})") from None
            self.register(plugin, name)


def build(rootdir: Path, args: list[str], with_conftest: bool = True) -> PluginManager:
    """A plugin manager with every plugin this invocation asks for, in pytest's order."""
    pm = PluginManager()
    load, block = preparse_plugins(args)
    for name in block:
        pm.block(name)
    for name, modname in {**ESSENTIAL, **BUILTIN}.items():
        pm.import_plugin(name, modname)
    pm.load_entrypoints()
    if with_conftest:
        pm.load_conftest(rootdir)
    for name in load:
        pm.import_plugin(name)
    return pm
