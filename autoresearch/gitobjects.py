"""A new commit's files read from git's loose objects, without a git process, where that is exact.

An experiment's commit changes a few files (the editable ones, those its patch wrote) of its base,
whose files (:class:`autoresearch.runfolder.Tree`) the runner already holds. The commit, its trees
along those paths and its new blobs are loose objects that git has just written: reading them
gives the commit's files as ``git archive`` would, as long as archive converts nothing. So
:func:`derive` refuses (returns None, and the runner asks ``git archive``) wherever it cannot be
sure: an object not loose (packed), a commit that is not the base's only child, a link or a
submodule among the paths, attributes anywhere (``.gitattributes``, ``info/attributes``: a filter,
an eol conversion, export-ignore), a configuration that converts (core.autocrlf) or sets tar's
umask, a repository of SHA-256 objects.
"""
from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

from autoresearch.runfolder import Tree

HEX = frozenset("0123456789abcdef")


def archive_is_plain(config: str) -> bool:
    """Whether ``git archive`` writes blobs as they are, by the configuration alone (``git config
    --get-regexp`` of core.autocrlf and tar.umask): no eol conversion, the default umask."""
    for line in config.lower().splitlines():
        key, _, value = line.partition(" ")
        if key == "core.autocrlf" and value.strip() not in ("false", "input", ""):
            return False
        if key == "tar.umask":
            return False
    return True


def loose(common: Path, sha: str) -> tuple[bytes, bytes] | None:
    """(type, content) of a loose object, checked against its id; None when not loose (or damaged)."""
    if len(sha) != 40 or not set(sha) <= HEX:
        return None
    try:
        with open(os.path.join(common, "objects", sha[:2], sha[2:]), "rb") as f:
            data = zlib.decompress(f.read())
    except (OSError, zlib.error):
        return None
    if hashlib.sha1(data).hexdigest() != sha:
        return None
    header, _, body = data.partition(b"\0")
    kind, _, size = header.partition(b" ")
    return (kind, body) if size.isdigit() and int(size) == len(body) else None


def entries(body: bytes) -> dict[str, tuple[bytes, str]]:
    """A tree object's entries: name -> (mode, id)."""
    out: dict[str, tuple[bytes, str]] = {}
    at = 0
    while at < len(body):
        space = body.index(b" ", at)
        nul = body.index(b"\0", space)
        out[body[space + 1:nul].decode("utf-8", "surrogateescape")] = (body[at:space], body[nul + 1:nul + 21].hex())
        at = nul + 21
    return out


def blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def tree_id(tree: Tree, folder: str, extra: dict[str, tuple[bytes, str]] | None = None) -> str:
    """The id git gives `folder` of `tree` (its files as git archive wrote them, so as git holds
    them when nothing converts): for a subtree the new commit shares with its base (packed).
    `extra`: entries the tree leaves out (path -> (mode, id)), e.g. the folders a run's files exclude."""
    prefix = folder + "/" if folder else ""
    items: dict[str, tuple[bytes, str]] = {}
    for name, (mode, sha) in (extra or {}).items():
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            items[name[len(prefix):] + ("/" if mode == b"40000" else "")] = (mode, sha)
    for name, content, executable in tree.files:
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            items[name[len(prefix):]] = (b"100755" if executable else b"100644", blob_id(content))
    for name, target in tree.links:
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            items[name[len(prefix):]] = (b"120000", blob_id(target.encode("utf-8", "surrogateescape")))
    for name in tree.folders:
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            items[name[len(prefix):] + "/"] = (b"40000", tree_id(tree, name, extra))
    body = b"".join(mode + b" " + name.rstrip("/").encode("utf-8", "surrogateescape") + b"\0" + bytes.fromhex(sha)
                    for name, (mode, sha) in sorted(items.items(), key=lambda kv: kv[0].encode("utf-8", "surrogateescape")))
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def derive(common: Path, base: str, base_tree: Tree, commit: str, paths: list[str],
           exclude: tuple[str, ...] = ()) -> Tree | None:
    """`commit`'s files, derived (:func:`changed`) and then checked whole: the tree they make,
    with the excluded folders' entries as the commit holds them, must be the commit's root tree, so
    a change outside `paths` (something else staged in the worktree) is never missed. None where
    that cannot be shown (the runner asks ``git archive``)."""
    found = changed(common, base, base_tree, commit, paths, exclude)
    if found is None:
        return None
    tree, root = found
    extra: dict[str, tuple[bytes, str]] = {}
    for folder in exclude:
        sha, parts = root, folder.split("/")
        for depth, part in enumerate(parts):
            node = loose(common, sha)
            if node is None or node[0] != b"tree":
                return None  # the commit's entry for an excluded folder cannot be read: not shown exact
            entry = entries(node[1]).get(part)
            if entry is None:
                break  # not in the commit: nothing to add
            if depth == len(parts) - 1:
                extra[folder] = entry
            sha = entry[1]
    return tree if tree_id(tree, "", extra) == root else None


def changed(common: Path, base: str, base_tree: Tree, commit: str, paths: list[str],
            exclude: tuple[str, ...] = ()) -> tuple[Tree, str] | None:
    """(`commit`'s files, its root tree's id): `base_tree` (the files of `base`, its only parent) with `paths`, the only
    ones the commit can have changed, read from the commit's loose objects. None where not exact.

    One function, long: every way to refuse sits in one place, checked in order (the commit, its
    attributes, each path's trees, its blob), so what it gives back is exact or nothing."""
    found = loose(common, commit)
    if found is None or found[0] != b"commit" or os.path.exists(os.path.join(common, "info", "attributes")):
        return None
    head = found[1].split(b"\n\n", 1)[0].split(b"\n")
    parents = [line[7:].decode() for line in head if line.startswith(b"parent ")]
    roots = [line[5:].decode() for line in head if line.startswith(b"tree ")]
    if parents != [base] or len(roots) != 1:
        return None
    if any(name.rpartition("/")[2] == ".gitattributes" for name, _, _ in base_tree.files) or \
            any(name.rpartition("/")[2] == ".gitattributes" for name, _ in base_tree.links):
        return None
    ours = {name: (content, executable) for name, content, executable in base_tree.files}
    changed: dict[str, tuple[bytes, bool]] = {}
    for path in paths:
        if path.rpartition("/")[2] == ".gitattributes":
            return None
        if any(path == e or path.startswith(e + "/") for e in exclude):
            continue  # not among a run's files
        mode, sha, parts = "40000", roots[0], path.split("/")
        for depth, part in enumerate(parts):
            tree = loose(common, sha) if mode == "40000" else None
            if tree is None and mode == "40000" and depth and "/".join(parts[:depth]) in base_tree.folders \
                    and tree_id(base_tree, "/".join(parts[:depth])) == sha:
                mode = "same"  # a folder the commit shares with its base: nothing in it changed
                break
            if tree is None or tree[0] != b"tree":
                return None
            entry = entries(tree[1]).get(part)
            if entry is None:
                return None
            mode, sha = entry[0].decode(), entry[1]
        if mode == "same":
            continue
        if mode not in ("100644", "100755"):
            return None  # a link, a folder, a submodule: git archive
        executable = mode == "100755"
        if path in ours and blob_id(ours[path][0]) == sha:
            if ours[path][1] != executable:
                changed[path] = (ours[path][0], executable)
            continue  # unchanged content (its object may well be packed)
        blob = loose(common, sha)
        if blob is None or blob[0] != b"blob":
            return None
        changed[path] = (blob[1], executable)
    if any(name in changed for name, _ in base_tree.links) or any(name in changed for name in base_tree.folders):
        return None
    files = tuple((name, *changed.pop(name)) if name in changed else (name, content, executable)
                  for name, content, executable in base_tree.files)
    added = tuple((name, content, executable) for name, (content, executable) in changed.items())
    folders = set(base_tree.folders)
    new_folders = []
    for name, _, _ in added:
        parent = name.rpartition("/")[0]
        while parent and parent not in folders:
            folders.add(parent)
            new_folders.append(parent)
            parent = parent.rpartition("/")[0]
    return Tree(base_tree.folders + tuple(sorted(new_folders, key=lambda f: f.count("/"))), files + added,
                base_tree.links), roots[0]
