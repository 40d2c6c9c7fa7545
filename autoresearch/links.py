"""``link`` on a folder git tracks: its tracked files come with every commit already; what git
ignores in it (shards, caches) is linked into it, and ``run`` says so once, before anything runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def link_missing(source: Path, target: Path) -> None:
    """Link each entry of `source` that `target` lacks (what git ignores), into folders both have."""
    for entry in os.scandir(source):
        there = target / entry.name
        if entry.is_dir(follow_symlinks=False) and there.is_dir() and not there.is_symlink():
            link_missing(Path(entry.path), there)
        elif not os.path.lexists(there):
            there.symlink_to(Path(entry.path).resolve(), target_is_directory=entry.is_dir())


def warn_tracked(config) -> None:
    """A `link` naming a folder git tracks: one warning (its tracked files come with every commit;
    only its ignored files are linked)."""
    from autoresearch.gitcmd import SAFE

    for name in config.get("link") or []:
        try:
            tracked = subprocess.run(["git", *SAFE, "ls-files", "-z", "--", name], cwd=config.rootdir,
                                     capture_output=True).stdout
        except OSError:  # no git: nothing is tracked
            tracked = b""
        if tracked and (config.rootdir / name).is_dir():
            print(f"autoresearch: warning: link: {name} is tracked by git: every run has its tracked files from "
                  f"the commit; its ignored files are linked into it (take {name} out of link to silence this)",
                  file=sys.stderr)
