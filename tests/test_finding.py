"""Collection's fast paths. Finding hypothesis files (autoresearch/finding.py's one scandir walk)
finds what the rglob-based search it replaced found, in the same order, and refuses the same links:
checked over random trees of files, folders never searched, links in and out of the project, link
loops. model.unprintable's fast path answers as its character walk."""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.checks import inside_project
from autoresearch.errors import UsageError
from autoresearch.finding import NORECURSE, NOT_HYPOTHESES, find_files, relpath


def reference(paths: list[Path], config) -> list[Path]:
    """The search as it was written with Path.rglob (the specification)."""
    skip = {config.rootdir / p for p in config.editable + config.protected}
    found: dict[Path, None] = {}
    allowed = [config.rootdir.resolve()]
    for path in paths:
        if path.is_file():
            found[inside_project(path, allowed, config)] = None
            continue
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path).parts
            if any(part.startswith((".", "_")) or any(fnmatch.fnmatch(part, pat) for pat in NORECURSE)
                   for part in rel[:-1]):
                continue
            if file.is_symlink() and file.is_dir() and not file.name.startswith((".", "_")):
                inside_project(file, allowed, config)
            if (file.suffix in (".toml", ".py") and file.is_file() and file.name not in NOT_HYPOTHESES
                    and not file.name.startswith((".", "_")) and file not in skip
                    and config.state_dir not in file.parents):
                found[inside_project(file, allowed, config)] = None
    return list(found)


class Config:
    def __init__(self, root: Path) -> None:
        self.rootdir, self.state_dir = root, root / ".autoresearch"
        self.editable, self.protected = ["train.py", "exp/sub/x.toml"], ["prepare.py"]

    def getoption(self, name: str):
        return None


NAMES = ["a.toml", "b.py", "_c.toml", ".d.toml", "pyproject.toml", "e.txt", "x.toml", "build", "tests", "sub",
         "_lib", ".hid", "z.py", "conftest.py", "train.py", "node_modules", "x.egg-info"]
STEP = st.tuples(st.integers(0, 50), st.sampled_from(NAMES), st.sampled_from(["file", "dir", "link"]),
                 st.integers(0, 5))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_the_walk_finds_what_rglob_found(tmp_path_factory, steps):
    root = tmp_path_factory.mktemp("tree").resolve()
    (root / "exp").mkdir()
    (root / ".autoresearch").mkdir()
    (root / ".autoresearch" / "s.toml").write_text("")
    outside = tmp_path_factory.mktemp("outside").resolve()
    (outside / "o.toml").write_text("")
    targets = [root / "exp", root / ".autoresearch", outside, outside / "o.toml", root / "exp" / "a.toml",
               root / ".autoresearch" / "s.toml"]
    dirs = [root / "exp"]
    for where, name, kind, target in steps:
        path = dirs[where % len(dirs)] / name
        if path.exists() or path.is_symlink():
            continue
        if kind == "file" and "." in name:
            path.write_text("")
        elif kind == "dir":
            path.mkdir()
            dirs.append(path)
        else:
            os.symlink(targets[target], path)
    for given_paths in ([root / "exp"], [root / "exp", root / "exp"], [root]):
        def outcome(search):
            try:
                return [str(p) for p in search(given_paths, Config(root))]
            except UsageError as exc:
                return f"UsageError: {exc}"
        assert outcome(find_files) == outcome(reference), given_paths


def test_relpath_is_pathlibs(tmp_path):
    for path in (tmp_path / "a" / "b.toml", tmp_path, tmp_path.parent / "x.toml", Path("/"), tmp_path / "a b" / "ü.py"):
        try:
            expected = path.relative_to(tmp_path).as_posix()
        except ValueError:
            expected = path.as_posix()
        assert relpath(path, tmp_path) == expected


def slow_unprintable(text: str, allow: str = "") -> str | None:
    """model.unprintable without its fast path (the specification)."""
    import unicodedata

    for c in text:
        if c in allow:
            continue
        if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or (unicodedata.category(c) == "Cf" and c not in "\u200d\u00ad"):
            return ascii(c)[1:-1]
    return None


@settings(max_examples=300, deadline=None)
@given(text=st.text(), allow=st.sampled_from(["", "\t", "\n\t"]))
def test_unprintables_fast_path_answers_as_the_character_walk(text, allow):
    from autoresearch.model import unprintable

    assert unprintable(text, allow) == slow_unprintable(text, allow)
