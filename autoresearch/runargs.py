"""The arguments of ``autoresearch run``: cli.py's run parser has them, and ``autoresearch ci``
reads the run options it passes on with them (autoresearch/ci.py), without the command line's
module (which imports every command's)."""
from __future__ import annotations

import argparse
from typing import Any


def add_run_arguments(run: argparse.ArgumentParser, parser: Any) -> None:
    """PATH..., -p NAME, the `paths` setting, and every run option of the settings (`parser`)."""
    run.add_argument("file_or_dir", nargs="*", metavar="PATH", help="hypothesis files or folders (default: the "
                                                               "'paths' setting, experiments/)")
    run.add_argument("-p", dest="plugins", action="append", default=[], metavar="NAME",
                     help="load plugin module NAME early; -p no:NAME blocks a plugin (e.g. -p no:journal)")
    add_paths_setting(parser)
    parser.populate(run)


def add_paths_setting(parser: Any) -> None:
    """The `paths` setting, which the command line declares (every command reads it; ``run`` takes PATH...)."""
    parser.addsetting("paths", type="list", default=["experiments"], help="where hypotheses are collected "
                                                                           "when no PATH is given")
