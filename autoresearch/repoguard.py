"""What no run may change in the user's repository (branches, tags, the run's refs, HEAD, the
config, hooks, attributes), snapshotted without a git process where git's files allow it, and
compared after every run of the workload (plugins/git.py holds one per session)."""
from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from pathlib import Path

from autoresearch.errors import UsageError
from autoresearch.gitcmd import ask


class Guard:
    """What no run may change in the repository: every branch and tag, the run's refs, HEAD, the
    config, the hooks and the attributes. Taken when the session starts and after each of the
    runner's own writes; compared after every run of the workload."""

    FILES = ("config", "config.worktree", "HEAD", "info/attributes", "commondir", "packed-refs")
    # git reads these too, whoever runs it: the user's own configuration and attributes
    GLOBAL = ("~/.gitconfig", "~/.config/git/config", "~/.config/git/attributes")

    def __init__(self, root: Path, common: Path, tag: str) -> None:
        self.root, self.common, self.tag = root, common, tag
        self.lock = threading.RLock()
        self.known: dict[str, str] = {}
        self.worktrees: list[Path] = []  # the run's worktrees: their .git file and git's record of them
        self.tripped = False  # a change was found: no more git in the worktrees (it could run a filter)
        self.files: dict[str, tuple[tuple[int, ...], str]] = {}  # a file read -> (its stat, what was read)

    def snapshot(self) -> dict[str, str]:
        state = self.loose_refs()
        if state is None:  # a ref store of another kind (reftable): git lists them
            state = {}
            refs = ask("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags",
                       f"refs/autoresearch/{self.tag}", cwd=self.root).stdout
            for line in refs.splitlines():
                name, _, sha = line.partition(" ")
                state[name] = sha
        for name in self.FILES:
            state[f".git/{name}"] = self.digest(self.common / name)
        hooks = self.common / "hooks"
        for path in sorted(hooks.rglob("*")) if hooks.is_dir() else []:
            state[f".git/hooks/{path.relative_to(hooks)}"] = self.digest(path)
        for name in self.GLOBAL:
            state[name] = self.digest(Path(os.path.expanduser(name)))
        for work in self.worktrees:
            state[f"{work.name}/.git"] = self.digest(work / ".git")
        for admin in sorted((self.common / "worktrees").glob("*")):
            for name in ("config.worktree", "commondir", "gitdir"):
                state[f".git/worktrees/{admin.name}/{name}"] = self.digest(admin / name)
        return state

    def loose_refs(self) -> dict[str, str] | None:
        """Every branch, tag and run ref as git's files store them, without a git process (one
        fewer per run): each loose ref's content, read again only when its file's inode, change
        time or size moved (a run's refs grow by one an experiment), and packed-refs whole (in
        FILES). None for a repository whose refs are not files (the reftable format)."""
        if (self.common / "reftable").exists():
            return None
        state: dict[str, str] = {}
        folders = ["refs/heads", "refs/tags", f"refs/autoresearch/{self.tag}"]
        while folders:
            folder = folders.pop()
            try:
                entries = list(os.scandir(os.path.join(self.common, folder)))
            except OSError:  # none of that kind yet
                continue
            for entry in entries:
                name = f"{folder}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    folders.append(name)
                elif not entry.name.endswith(".lock"):  # a git at work: its result is what counts
                    state[name] = self.ref_file(name, entry)
        return state

    def digest(self, path: Path) -> str:
        """:func:`digest`, computed again only when the file's inode, change time or size moved
        (a snapshot a run reads some 25 files: the hooks, the configs)."""
        try:
            st = os.lstat(path)
        except OSError:
            return digest(path)
        if not stat.S_ISREG(st.st_mode):  # a link (to what may change), a folder: as before
            return digest(path)
        mark = (st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size)
        cached = self.files.get(str(path))
        if cached is None or cached[0] != mark:
            cached = self.files[str(path)] = (mark, digest(path))
        return cached[1]

    def ref_file(self, name: str, entry: os.DirEntry) -> str:
        try:
            st = entry.stat(follow_symlinks=False)
            mark = (st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size)
            cached = self.files.get(name)
            if cached is None or cached[0] != mark or stat.S_ISLNK(st.st_mode):
                with open(entry.path, errors="replace") as f:
                    cached = self.files[name] = (mark, f.read().strip())
            return cached[1]
        except OSError:
            return "unreadable"

    def refresh(self) -> None:
        with self.lock:
            self.known = self.snapshot()

    def verify(self, label: str) -> None:
        """One line naming what changed since the runner last looked, if anything did."""
        with self.lock:
            now = self.snapshot()
            changed = sorted(k for k in set(now) | set(self.known) if now.get(k) != self.known.get(k))
        if changed:
            self.tripped = True
            what = changed[0]
            before, after = self.known.get(what, "absent"), now.get(what, "absent")
            raise UsageError(f"the repository changed while {label} ran: {what} ({before[:10]} -> {after[:10]})"
                             + (f" and {len(changed) - 1} more" if len(changed) > 1 else "")
                             + "; a run must never change it. Undo the change (or, if you made it yourself, "
                               "leave it), then continue with --resume")


# a ref name whose every part git's check-ref-format accepts as it is (no "..", "@{", control or
# special characters, no part starting with "." or ending with ".lock" or "."): plain enough to be
# a file name under refs/ as git would make it
PLAIN_REF = re.compile(r"(?!.*\.\.)refs(/(?!\.)(?![^/]*\.lock(?:/|$))[A-Za-z0-9_+=,.-]*[A-Za-z0-9_+=,-])+")
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def can_write_refs(common: Path, config: str) -> bool:
    """Whether a new ref under refs/autoresearch is written exactly as ``git update-ref`` writes it
    by :func:`write_loose_ref`: refs stored as files (not reftable), no reflog for such a ref
    (core.logAllRefUpdates is not "always"), files made with the user's umask (no
    core.sharedRepository), not fsynced (core.fsync unset: git's default flushes no ref).
    `config` is ``git config --get-regexp`` of those keys."""
    if (common / "reftable").exists() or not (common / "refs").is_dir():
        return False
    for line in config.lower().splitlines():
        key, _, value = line.partition(" ")
        if key == "extensions.refstorage" and value.strip() != "files":
            return False
        if key == "core.logallrefupdates" and value.strip() == "always":
            return False
        if key == "core.sharedrepository" and value.strip() not in ("", "false", "umask", "0"):
            return False
        if key == "core.fsync":  # git flushes what it names: git writes the ref
            return False
    return True


def write_loose_ref(common: Path, name: str, sha: str) -> bool:
    """Write ref `name` = `sha` as git's files backend does, without a git process: a lock file
    made exclusively, the value written, then renamed over the ref (not fsynced: git's default;
    the ledger's fsync is the experiment's commit point, and names this commit). False, with nothing
    left behind, where git must do it (a name not plain, a lock or a folder in the way): git then
    gives its own error, or does it."""
    if not PLAIN_REF.fullmatch(name) or not SHA.fullmatch(sha) or not _plain_update(common, name):
        return False
    path = os.path.join(common, name)
    lock = path + ".lock"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError:
        return False
    try:
        try:
            os.write(fd, f"{sha}\n".encode())
        finally:
            os.close(fd)
        os.rename(lock, path)
    except OSError:
        try:
            os.unlink(lock)
        except OSError:
            pass
        return False
    return True


def _plain_update(common: Path, name: str) -> bool:
    """Whether writing ref `name` is all git would do (review): not when it has a reflog (git appends
    to an existing one even with logAllRefUpdates off), is a symbolic ref (git updates its target),
    or clashes with a packed ref (a folder of it, or it a folder of ours: git refuses)."""
    path = os.path.join(common, name)
    if os.path.lexists(os.path.join(common, "logs", name)) or os.path.islink(path):
        return False
    try:
        with open(path, "rb") as f:
            if f.read(5) == b"ref: ":
                return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        with open(os.path.join(common, "packed-refs"), "rb") as f:
            packed = f.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    mine = name.encode()
    for line in packed.splitlines():
        ref = line[41:] if len(line) > 41 and line[40:41] == b" " else b""
        if ref and (mine.startswith(ref + b"/") or ref.startswith(mine + b"/")):
            return False
    return True


def head_of(work: Path) -> str | None:
    """The commit a worktree's detached HEAD names, read from git's file (None: git is asked)."""
    try:
        link = (work / ".git").read_text().strip()
        admin = Path(link[len("gitdir: "):]) if link.startswith("gitdir: ") else None
        head = (work / admin / "HEAD").read_text().strip() if admin is not None else ""
    except OSError:
        return None
    return head if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head) else None


def digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else \
            ("link:" + os.readlink(path) if path.is_symlink() else "absent")
    except OSError:
        return "unreadable"
