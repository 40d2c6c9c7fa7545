"""Start-up checks of the places settings name: each path setting on its own, and every pair of them.

Every check here runs before anything is written (no branch, no ref, no run folder, no lock file)
and refuses a bad setting with one line:

    check_layout      as the settings are read (config.Config), before collection: a state_dir that
                      would hide the hypotheses must be refused before they are looked for
      paths           inside the project, through any link: a Python file found there is imported
      check_output    each file the runner writes: not code, not .git, not a link (symbolic or hard)
      every pair      of path settings (ROLES): never one place; nested only where harmless
    check_state_dir   after collection, before the lock (main.check_outputs; import): inside the
                      project, a folder, holding no file git tracks
    check_store       a plugin's own database (the MLflow store, in its preflight)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError


def inside(value: Any) -> str | None:
    """A `check` for paths in the project: relative, below its root, never into .git."""
    for path in (value if isinstance(value, list) else [value]):
        parts = Path(path).parts
        if not path or "\0" in path or Path(path).is_absolute() or ".." in parts or (parts and parts[0] == ".git"):
            return f"{shown(path)} must be a path inside the project (relative, no .., not in .git)"
    return None


def shown(value: Any, width: int = 80) -> str:
    """A value as an error line shows it: repr (so escapes and control characters are visible), cut short."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 1] + "…"


# What each path setting is, which decides which pairs may nest. A new path setting (one checked with
# config.inside) must be given a role here: tests/test_settings.py fails until it is.
#   state      the runner's folder: git-ignored (through .git/info/exclude) and never collected
#   output     a file the runner writes
#   collected  where hypotheses are looked for (PATH on the command line instead, when given)
#   code       files hypotheses may or may not change
#   link       data git ignores, linked into every worktree
ROLES = {"state_dir": "state", "results_path": "output", "journal_path": "output", "lessons_path": "output",
         "paths": "collected", "editable": "code", "protected": "code", "link": "link"}
WRITTEN = ("state", "output")
OWN_OUTPUTS = ("results_path", "journal_path", "lessons_path")


def _real(config: Any, value: str, base: Path) -> tuple[str, ...] | None:
    """Where a path lands, as parts relative to the project's real root (None: outside it): the folders on
    its way through any link, the name itself not (a link there is check_output's and check_state_dir's)."""
    root = os.path.realpath(config.rootdir)
    path = Path(os.path.abspath(base / value))
    rel = os.path.relpath(os.path.join(os.path.realpath(path.parent), path.name) if path.name else path, root)
    parts = Path(rel).parts if rel != "." else ()
    return None if parts[:1] == ("..",) else parts


def _places(config: Any) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(setting, role, value, real parts) of every place a path setting names, inside the project."""
    out = []
    for name, role in ROLES.items():
        values, base = config.get(name), config.rootdir
        if name == "paths" and config.getoption("file_or_dir"):
            name, values, base = "PATH", config.getoption("file_or_dir"), Path.cwd()
        for value in values if isinstance(values, list) else [values] if values else []:
            parts = _real(config, value, base)
            if parts is not None:
                out.append((name, role, value, parts))
    return out


def _clash(x: tuple[str, str, str, tuple[str, ...]], y: tuple[str, str, str, tuple[str, ...]]) -> str | None:
    """Why place x, strictly inside or equal to place y, cannot be there (None: it can)."""
    (_, xrole, _, xp), (_, yrole, _, yp) = x, y
    if xp == yp:
        return "one place for both: one would overwrite or hide the other (give each its own)"
    if yrole == "state":
        return f"{x[0]} is inside the state folder, which git and collection never see (put it elsewhere)"
    if yrole == "output":
        return f"{x[0]} is inside a file the runner writes (give each its own place)"
    if xrole in WRITTEN and yrole != "collected":
        return (f"{x[0]} is inside {'the code' if yrole == 'code' else 'a linked data folder'}, where the runner "
                "must not write (put it elsewhere)")
    if xrole == "state" and not any(part.startswith(".") for part in xp[len(yp):]):
        return (f"{x[0]} is inside a folder where hypotheses are collected, which would skip what is in it (use a "
                "hidden folder such as .autoresearch)")
    return None


def check_layout(config: Any) -> None:
    """`paths` inside the project, and no two path settings on one place (see ROLES for which may nest)."""
    root = os.path.realpath(config.rootdir)
    for value in config.get("paths") or []:  # read through any link, the last one included
        if inside(value):
            raise UsageError(f"paths: {inside(value)}: a Python hypothesis file elsewhere would be imported and "
                             "run; give it on the command line (autoresearch run PATH) to collect it on purpose")
        if os.path.commonpath([root, os.path.realpath(config.rootdir / value)]) != root:
            raise UsageError(f"paths: {shown(value)} leads outside the project (to "
                             f"{os.path.realpath(config.rootdir / value)}): a Python hypothesis file there would be "
                             "imported and run; give it on the command line (autoresearch run PATH) to collect it "
                             "on purpose")
    for key in OWN_OUTPUTS:  # each on its own first: a folder, a link (relative to the project's root)
        if config.get(key):
            check_output(config, key, config.get(key), config.rootdir)
            if _real(config, config.get(key), config.rootdir) is None:  # through a linked folder, say
                raise UsageError(f"{key}: {shown(config.get(key))} leads outside the project (to "
                                 f"{os.path.realpath(config.rootdir / config.get(key))}): the runner keeps its records "
                                 "in the project; give a path inside it")
    places = _places(config)
    for i, x in enumerate(places):
        for y in places[i + 1:]:
            if x[0] == y[0]:
                continue  # the entries of one list: a duplicate is harmless
            for a, b in ((x, y), (y, x)):
                if a[3][:len(b[3])] == b[3] and (why := _clash(a, b)):
                    raise UsageError(f"{a[0]} = {shown(a[2])} and {b[0]} = {shown(b[2])}: {why}")


def inside_project(file: Path, allowed: list[Path], config: Any) -> Path:
    """The real path of a collected file, if in the project or a PATH given on the command line (else one line)."""
    real = file.resolve()
    if any(real == root or root in real.parents for root in allowed):
        return real
    rel = os.path.relpath(file, config.rootdir) if config.rootdir in file.parents else str(file)
    raise UsageError(f"{rel}: leads outside the project (to {real}, through a link): a hypothesis file there "
                     f"would be read, a Python one imported and run; give it on the command line "
                     f"(autoresearch run {rel}) to collect it on purpose")


def check_state_dir(config: Any) -> None:
    """The state folder, through any link: inside the project, never in .git, a folder, and no tracked
    file in it (it is written into .git/info/exclude: new code there would be hidden from git)."""
    state = os.path.realpath(config.state_dir)
    root = os.path.realpath(config.rootdir)
    if os.path.commonpath([state, root]) != root or os.path.relpath(state, root).split(os.sep)[0] in (".git", "."):
        raise UsageError(f"state_dir {shown(config.get('state_dir'))} leads to {state}, outside the project or into "
                         ".git (through a link?): give a folder inside the project")
    if os.path.exists(state) and not os.path.isdir(state):
        raise UsageError(f"state_dir {shown(config.get('state_dir'))} is a file, not a folder")
    tracked = _tracked(config, state)
    if tracked:
        raise UsageError(f"state_dir {shown(config.get('state_dir'))} holds files git tracks ({tracked}): the runner "
                         "hides its state folder from git, so give a folder of its own (e.g. .autoresearch)")
    if config.getoption("junitxml"):  # a path on the command line: relative to where it was typed
        check_output(config, "--junitxml", config.getoption("junitxml"))


def _tracked(config: Any, path: str) -> str | None:
    """The first file git tracks at or under `path` (None: none, or no git repository here)."""
    import subprocess

    proc = subprocess.run(["git", "ls-files", "-z", "--", path], cwd=config.rootdir, capture_output=True)
    names = proc.stdout.split(b"\0")[0] if proc.returncode == 0 else b""
    return names.decode(errors="replace") or None


def check_output(config: Any, key: str, value: str, base: Path | None = None) -> Path:
    """A file the runner (or a command) writes: never a link (symbolic or hard), a folder, a file of .git,
    an editable or protected file, nor a hypothesis file (.py, .toml). `value` is relative to `base`
    (default: the current folder, as for a path typed on the command line); returns the absolute path."""
    code = [*config.editable, *config.protected]
    own = {os.path.normpath(p): f"the project's code ({'editable' if p in config.editable else 'protected'} = "
                                f"{shown(p)})" for p in code}
    if not key.endswith("_path"):  # a command's output never lands on the runner's own records either
        own.update({os.path.normpath(config.get(k)): f"the runner's own record ({k} = {shown(config.get(k))})"
                    for k in OWN_OUTPUTS if config.get(k)})
    path = Path(value) if Path(value).is_absolute() else (base or Path.cwd()) / value
    path = Path(os.path.abspath(path))
    root = os.path.realpath(config.rootdir)  # folders on the way may be links: judge where it really lands
    real = os.path.join(os.path.realpath(path.parent), path.name)
    rel = os.path.normpath(os.path.relpath(real, root))
    what = own.get(rel) or ("part of .git" if rel.split(os.sep)[0] == ".git" else
                            "the project's code, its settings or a hypothesis file (.py, .toml)"
                            if path.suffix in (".py", ".toml") else None)
    if what:
        raise UsageError(f"{key} = {shown(value)} is {what}; writing it would overwrite what it holds (choose "
                         "another path)")
    if path.is_symlink():
        raise UsageError(f"{key}: {shown(value)} is a symbolic link (to {os.readlink(path)}); the runner never "
                         "writes through links: remove it, or choose another path")
    if path.is_dir():
        raise UsageError(f"{key}: {shown(value)} is a folder (give a file's path)")
    if path.is_file() and path.stat().st_nlink > 1:
        same = path.stat()
        twin = next((name for name in code if _same_file(config.rootdir / name, same)), None)
        raise UsageError(f"{key}: {shown(value)} is a hard link ({f'the same file as {twin}' if twin else ''}"
                         f"{'' if twin else f'{same.st_nlink} names for one file'}): writing it would change the "
                         "other names too; the runner never writes through links: remove it, or choose another path")
    return path


def _same_file(path: Path, stat: os.stat_result) -> bool:
    try:
        other = path.stat()
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (stat.st_dev, stat.st_ino)


def check_store(config: Any, key: str, path: Path) -> None:
    """A file a plugin keeps its own records in (an MLflow database): what check_output refuses, a file git
    tracks (it would be overwritten as a database), and any place a path setting names."""
    real = check_output(config, key, str(path))
    tracked = _tracked(config, str(real)) if _real(config, str(real), config.rootdir) is not None else None
    if tracked:
        raise UsageError(f"{key}: {shown(str(path))} is a file git tracks ({tracked}): a database there would "
                         "overwrite it (choose another path)")
    parts = _real(config, str(real), config.rootdir)
    for name, _, value, place in _places(config):
        if parts == place:
            raise UsageError(f"{key}: {shown(str(path))} is {name} = {shown(value)}: each needs a place of its own")
