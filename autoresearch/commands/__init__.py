"""The commands, one module each: ``run``, ``status``, ``show``, ``diff``, ``report``, ``new``, ``calibrate``, ``init``,
and ``export`` / ``import`` / ``publish`` (``share``, over :mod:`autoresearch.share`), ``ci`` (over
:mod:`autoresearch.ci`).

Each module has ``main(config) -> int`` (``init``: ``main(rootdir)``, run before the settings are
read); the command line imports only the module of the command it runs.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: command name -> the module that runs it
MODULES = {"run": "run", "status": "status", "show": "show", "diff": "diff", "new": "new", "report": "report",
           "calibrate": "calibrate", "init": "init", "export": "share", "import": "share", "publish": "share",
           "ci": "ci"}


def module(name: str) -> ModuleType:
    """The module of command `name`, imported on first use."""
    return importlib.import_module(f"autoresearch.commands.{MODULES[name]}")
