"""Finding hypothesis files: which files under the given paths collection reads, in a fixed order.

One walk with ``os.scandir``: a folder collection never searches (hidden, ``_private``, one of
:data:`NORECURSE`) is not entered at all, and a file's real path is its folder's (resolved once per
folder) joined with its name unless the file is itself a link, so 1,000 files cost 1,000 directory
entries rather than 1,000 path resolutions.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from autoresearch.checks import inside_project
from autoresearch.errors import UsageError

NORECURSE = ("__pycache__", "node_modules", "venv", "*.egg-info", "build", "dist", "tests", "test")
NOT_HYPOTHESES = {"pyproject.toml", "conftest.py", "setup.py", "__init__.py", "autoresearch.args.toml"}


def searched(name: str) -> bool:
    """Whether collection looks inside a folder of this name."""
    return not name.startswith((".", "_")) and not any(fnmatch.fnmatch(name, pat) for pat in NORECURSE)


def find_files(paths: list[Path], config) -> list[Path]:
    """Candidate files under the given paths, deterministic (sorted), without duplicates."""
    skip = {str(config.rootdir / p) for p in config.editable + config.protected}
    state = str(config.state_dir) + os.sep
    found: dict[Path, None] = {}
    # where a file may lead through links: into the project, or into what was given on the command line
    allowed = [config.rootdir.resolve(), *(p.resolve() for p in paths if config.getoption("file_or_dir"))]
    roots = [str(root) for root in allowed]
    for path in paths:
        if not path.exists():
            raise UsageError(f"file or folder not found: {relpath(path, config.rootdir)}")
        if path.is_file():
            found[inside_project(path, allowed, config)] = None
            continue
        entries: list[tuple[tuple[str, ...], os.DirEntry, str]] = []
        _walk(str(path), (), entries)
        for parts, entry, real_dir in sorted(entries, key=lambda e: e[0]):
            file = entry.path
            if entry.is_symlink():
                if _is(entry.is_dir) and not entry.name.startswith((".", "_")):
                    inside_project(Path(file), allowed, config)  # not searched (as rglob does not); never one outside
                real = None
            else:
                real = os.path.join(real_dir, entry.name)
            name = entry.name
            if (name.endswith((".toml", ".py")) and _is(entry.is_file) and name not in NOT_HYPOTHESES
                    and not name.startswith((".", "_")) and file not in skip and not file.startswith(state)):
                if real is not None and any(real == root or real.startswith(root.rstrip(os.sep) + os.sep)
                                            for root in roots):
                    found[Path(real)] = None
                else:
                    found[inside_project(Path(file), allowed, config)] = None
    return list(found)


def _walk(folder: str, parts: tuple[str, ...], out: list) -> None:
    """Every entry under `folder` that collection considers (as (its parts, the entry, the folder's
    real path)), not entering a folder it never searches nor a link to one (as ``Path.rglob``)."""
    real_dir = os.path.realpath(folder)
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except (NotADirectoryError, FileNotFoundError, PermissionError):  # as Path.rglob: nothing there
        return
    for entry in entries:
        here = (*parts, entry.name)
        out.append((here, entry, real_dir))
        try:
            descend = entry.is_dir(follow_symlinks=False)
        except OSError:
            descend = False
        if descend and searched(entry.name):
            _walk(entry.path, here, out)


def _is(test) -> bool:
    """A DirEntry test through links, False where it cannot be answered (a link loop), as pathlib's."""
    try:
        return test()
    except OSError:
        return False


def relpath(path: Path, rootdir: Path) -> str:
    """`path` relative to the root folder, with / (the path itself when it is elsewhere)."""
    text, root = str(path), str(rootdir).rstrip(os.sep) + os.sep
    if text.startswith(root) and os.sep == "/" and "/../" not in f"/{text}/":
        return text[len(root):]
    try:
        return path.relative_to(rootdir).as_posix()
    except ValueError:
        return path.as_posix()
