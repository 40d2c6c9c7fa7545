"""A run's files: a commit's tree read once from git's object store, written anew for every run.

``git archive`` gives the commit's files as a tar; :func:`read` checks every member once (names
inside the folder, links that stay inside it, nothing but folders, files and symbolic links: what
the tar ``data`` filter allows) and keeps them in memory as a :class:`Tree`. :func:`write` then
lays the tree out in a fresh folder with plain system calls for each run of the commit, which is
several times faster than unpacking the tar again, and refuses to follow any link while it writes.

The hypothesis folders (the ``paths`` setting) are left out of a run's files: they are the
runner's input, not the workload's, and a project an agent drives may hold thousands of them.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_NOWHERE = "/nonexistent-autoresearch-root"  # where the data filter pretends to unpack: names are checked, not paths


@dataclass(frozen=True)
class Tree:
    """A commit's files: folders, (name, content, executable) files and (name, target) links."""

    folders: tuple[str, ...]
    files: tuple[tuple[str, bytes, bool], ...]
    links: tuple[tuple[str, str], ...]

    @property
    def size(self) -> int:
        return sum(len(content) for _, content, _ in self.files)


def read(data: bytes) -> Tree:
    """The tree of a tar (``git archive``'s), every member checked by the tar data filter once:
    an absolute link or one that leads outside raises tarfile.FilterError, a name with ".."
    ValueError; an absolute name is made relative (as the filter makes it)."""
    folders: list[str] = []
    files: list[tuple[str, bytes, bool]] = []
    links: list[tuple[str, str]] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            # the name as it will be written ("a/." is "a"), then checked: a link's target is judged
            # from the folder it will really sit in, not from the one its raw name suggests; and the
            # name kept is the one the filter gave back (it strips a leading "/")
            name = PurePosixPath(member.name).as_posix().rstrip("/")
            if not name or name == ".":
                continue
            checked = tarfile.data_filter(member.replace(name=name, deep=False), _NOWHERE)
            name = PurePosixPath(checked.name).as_posix().rstrip("/")
            if not name or name == "." or name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"{member.name!r}: a name outside the run folder has no place in a run's files")
            if checked.isdir():
                folders.append(name)
            elif checked.isreg():
                content = tar.extractfile(member).read()  # type: ignore[union-attr]
                files.append((name, content, bool(checked.mode and checked.mode & 0o100)))
            elif checked.issym():
                links.append((name, checked.linkname))
            # anything else (a pax header, a device, a hard link) has no place in a run's files
    return Tree(tuple(folders), tuple(files), tuple(links))


def archive(rootdir: Path, commit: str | None, source: Path | None = None, exclude: tuple[str, ...] = ()) -> Tree:
    """The files of `commit`, from git's object store (never the worktree's files, which a run may
    have touched, nor anything git does not track), less the folders in `exclude`; without git,
    the files of `source` less .git and `exclude`."""
    if commit:
        from autoresearch.gitcmd import SAFE

        spec = [".", *(f":(exclude,literal){name}" for name in exclude)] if exclude else []
        data = subprocess.run(["git", *SAFE, "archive", "--format=tar", commit, "--", *spec], cwd=rootdir,
                              capture_output=True, check=True).stdout
        return read(data)
    skip = {*exclude}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(source.iterdir()):  # type: ignore[union-attr]
            if path.name != ".git" and path.name not in skip:
                tar.add(path, arcname=path.name, filter=lambda t: None if t.name.split("/")[-1] == ".git" else t)
    return read(buf.getvalue())


def write(tree: Tree, folder: Path) -> None:
    """Lay `tree` out in the empty `folder`: folders, then files (created, never opened through a
    link), then the links last, so that no file is written through one."""
    base = str(folder)
    for name in (*tree.folders, *(f[0] for f in tree.files), *(link[0] for link in tree.links)):
        if name.startswith("/") or ".." in name.split("/"):  # read() never gives one: the last line of defence
            raise ValueError(f"{name!r}: outside the run folder")
    made = {""}
    for name in tree.folders:
        os.makedirs(os.path.join(base, name), exist_ok=True)
        made.add(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for name, content, executable in tree.files:
        parent = name.rpartition("/")[0]
        if parent not in made:
            os.makedirs(os.path.join(base, parent), exist_ok=True)
            made.add(parent)
        fd = os.open(os.path.join(base, name), flags, 0o755 if executable else 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    for name, target in tree.links:
        os.symlink(target, os.path.join(base, name))


def remove(folder: Path) -> None:
    """Remove a run folder, whatever its code made of it (read-only folders included)."""
    def onerror(func, path, exc_info) -> None:
        try:  # a folder the run made unwritable; never through a link (its target is not ours)
            if not os.path.islink(os.path.dirname(path)):
                os.chmod(os.path.dirname(path), 0o700)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
            func(path)
        except OSError:
            pass

    shutil.rmtree(folder, onerror=onerror)
