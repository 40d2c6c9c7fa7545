"""A run's files: the commit's tree, read once and written anew per run, never outside the folder."""
from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from autoresearch import runfolder
from conftest import git, hyp, write

LISTING_TRAIN = """\
import os, sys
for root, dirs, files in os.walk("."):
    for f in files:
        p = os.path.join(root, f)
        print("FILE", p, oct(os.stat(p).st_mode & 0o777), file=sys.stderr)
print("---")
print("val_bpb:          1.000000")
"""


def test_a_run_gets_the_commits_files_but_not_the_hypothesis_folders(repo: Path, cli) -> None:
    write(repo / "train.py", LISTING_TRAIN)
    tool = write(repo / "tools" / "helper.sh", "#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    write(repo / "data" / "nested" / "x.txt", "data\n")
    os.symlink("data/nested/x.txt", repo / "x-link.txt")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "files")
    hyp(repo, "a", 'description = "a"\nhypothesis = "h"\n[[replace]]\nold = "import os, sys"\nnew = "import os, sys  # a"\n')

    r = cli("run", "--tag", "t", "-q")
    assert r.rc == 0, r
    logs = sorted((repo / ".autoresearch" / "runs" / "t" / "logs").glob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        files = {line.split()[1]: line.split()[2] for line in text.splitlines() if line.startswith("FILE ")}
        assert "./train.py" in files and "./prepare.py" in files and "./data/nested/x.txt" in files
        assert files["./tools/helper.sh"] == "0o755" and files["./train.py"] == "0o644"
        assert "./x-link.txt" in files  # the link, written last, points inside the folder
        assert not any(name.startswith("./experiments/") for name in files), text  # the hypotheses stay out
        assert not any(name.startswith("./.git") for name in files)


def _tar(members: list[tuple[str, str, bytes | str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(payload))  # type: ignore[arg-type]
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
                tar.addfile(info)
    return buf.getvalue()


SEGMENT = st.sampled_from(["a", "b", "..", ".", "", "c d", "é", "/"])
NAME = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
MEMBER = st.one_of(
    st.tuples(st.just("file"), NAME, st.binary(max_size=64)),
    st.tuples(st.just("dir"), NAME, st.just(b"")),
    st.tuples(st.just("link"), NAME, st.one_of(NAME, st.just("/etc/passwd"), st.just("../../outside"))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(MEMBER, max_size=8))
@example([("link", "a/.", "..")])  # found by the search: the link was judged from a/, then written as a
@example([("file", "/escaped-by-tar", b"hi")])  # an absolute name, kept raw, was written at /
def test_nothing_of_a_tree_lands_outside_its_folder(members) -> None:
    """Whatever an archive holds (names with .., absolute names and links, links out of the
    folder), reading refuses it or writing keeps every path inside the folder."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "run"
        folder.mkdir()
        before = set(os.listdir(scratch))
        try:
            tree = runfolder.read(_tar(members))
            names = [*tree.folders, *(f[0] for f in tree.files), *(link[0] for link in tree.links)]
            assert not [n for n in names if n.startswith("/") or ".." in n.split("/")], names  # never / or ..
            runfolder.write(tree, folder)
        except (tarfile.TarError, OSError, ValueError):
            pass  # refused, or a clash of names inside the folder: either way nothing outside it
        assert set(os.listdir(scratch)) == before
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = Path(root) / name
                if path.is_symlink():
                    assert Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder)), path


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.lists(st.sampled_from(["a", "b", "c", "d.py"]), min_size=1, max_size=3).map("/".join),
                       st.tuples(st.binary(max_size=200), st.booleans()), max_size=10))
def test_a_tree_is_written_exactly(files) -> None:
    """Every file of a tree comes back with its bytes and its executable bit, once per run."""
    names = sorted(files)
    files = {n: v for n, v in files.items() if not any(o != n and o.startswith(n + "/") for o in names)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (content, exe) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755 if exe else 0o644
            tar.addfile(info, io.BytesIO(content))
    tree = runfolder.read(buf.getvalue())
    for _ in range(2):  # the same tree, written for two runs
        with tempfile.TemporaryDirectory() as scratch:
            runfolder.write(tree, Path(scratch))
            for name, (content, exe) in files.items():
                path = Path(scratch, name)
                assert path.read_bytes() == content
                assert bool(stat.S_IMODE(path.stat().st_mode) & 0o100) == exe


def test_writing_never_follows_a_link(tmp_path: Path) -> None:
    """A tree whose link comes before a file of the same name cannot write through it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    tree = runfolder.Tree(folders=(), files=(("f", b"x", False),), links=(("f", str(outside)),))
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(FileExistsError):
        runfolder.write(tree, folder)
    assert outside.read_text() == "mine\n"
