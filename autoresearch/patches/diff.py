"""``diff``: a unified diff of the editable files, applied with ``git apply``.

Only changes to the lines of existing regular files are allowed: headers that create, delete,
rename or copy a file, change its mode or carry a binary patch are refused before git sees them,
and the result is checked again after.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from autoresearch.errors import PatchError
from autoresearch.patches import PatchKind, PatchResult

# git's extended header lines that do more than change lines of an existing file: refused
_REFUSED = {
    "new file mode": "creates a file", "deleted file mode": "deletes a file", "old mode": "changes a file's mode",
    "new mode": "changes a file's mode", "rename from": "renames a file", "rename to": "renames a file",
    "rename old": "renames a file", "rename new": "renames a file", "copy from": "copies a file",
    "copy to": "copies a file", "similarity index": "renames or copies a file",
    "dissimilarity index": "rewrites a file as a new one", "GIT binary patch": "is a binary patch",
    "Binary files": "is a binary patch", "literal ": "is a binary patch", "delta ": "is a binary patch",
}
_HUNK = re.compile(r"^@@ -[0-9]+(?:,([0-9]+))? \+[0-9]+(?:,([0-9]+))? @@")
_INDEX = re.compile(r"^index [0-9a-fA-F]+\.\.[0-9a-fA-F]+(?:\s+(\S+))?\s*$")
_ONLY_LINES = "a diff may only change lines of the editable files"


def _error(message: str) -> PatchError:
    return PatchError(f"diff: {message}", "diff")


def _strip(path: str) -> str:
    path = path.split("\t")[0].strip()
    if len(path) > 1 and path[0] == path[-1] == '"':  # git quotes odd names: refuse rather than guess
        raise _error(f"a quoted file name {path} (only editable files, by their plain names, may change)")
    return path[2:] if path[:2] in ("a/", "b/") else path


def _skip_hunk(lines: list[str], i: int, m: re.Match) -> int:
    """The index after a hunk's body: its counts say how many old and new lines it holds."""
    old = int(m.group(1)) if m.group(1) is not None else 1
    new = int(m.group(2)) if m.group(2) is not None else 1
    i += 1
    while i < len(lines) and (old > 0 or new > 0):
        body = lines[i]
        if body.startswith("-"):
            old -= 1
        elif body.startswith("+"):
            new -= 1
        elif body.startswith(" ") or body == "":
            old, new = old - 1, new - 1
        elif not body.startswith("\\"):  # "\ No newline at end of file" counts for neither
            break  # a short hunk: what follows is headers again (git apply refuses it anyway)
        i += 1
    return i


def diff_files(text: str) -> list[str]:
    """The files a unified diff changes, read from every header form, hunks skipped by their counts.

    Only changes to the lines of existing regular files are allowed: a header that creates,
    deletes, renames or copies a file, changes its mode (a symlink is mode 120000) or carries a
    binary patch is a :class:`PatchError`, as is a ``diff --git`` line whose two paths differ.
    """
    paths: list[str] = []
    lines = text.split("\n")  # as git reads a patch: \x0c, \x1c or \x85 break no line
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HUNK.match(line)
        if m:
            i = _skip_hunk(lines, i, m)
            continue
        for prefix, what in _REFUSED.items():
            if line.startswith(prefix):
                raise _error(f"{line.strip()[:80]!r} {what} ({_ONLY_LINES}: no new, deleted, renamed, copied or "
                             "binary files, no mode changes)")
        if line.startswith("diff --git "):
            parts = line[len("diff --git "):].split(" ")
            if len(parts) != 2 or _strip(parts[0]) != _strip(parts[1]):
                raise _error(f"{line.strip()[:80]!r} names two different files (renames are refused; {_ONLY_LINES})")
            paths.append(_strip(parts[0]))
        elif re.match(r"index\s", line):
            m = _INDEX.match(line)
            if not m or (m.group(1) and m.group(1) not in ("100644", "100755")):
                mode = f"mode {m.group(1)} is not a regular file" if m else "not an index line git writes"
                raise _error(f"{line.strip()[:80]!r}: {mode} (symlinks and submodules are refused)")
        elif line.startswith(("--- ", "+++ ")):
            path = _strip(line[4:])
            if path == "/dev/null":
                raise _error(f"{line.strip()[:80]!r} {'creates' if line[0] == '-' else 'deletes'} a file "
                             f"({_ONLY_LINES})")
            paths.append(path)
        i += 1
    if not paths:
        raise _error("no '--- a/FILE' / '+++ b/FILE' headers (give a unified diff, as git diff prints)")
    return paths


def check_diff_paths(text: str, editable: list[str], protected: list[str]) -> None:
    for path in diff_files(text):
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or os.path.isabs(path):
            raise _error(f"{path} is outside the repository (only {', '.join(editable)} may change)")
        if str(pure) in protected:
            raise _error(f"touches protected file {path} (protected: {', '.join(protected)})")
        if str(pure) not in editable:
            raise _error(f"touches {path}, which is not editable (editable: {', '.join(editable)})")


def apply_diff(texts: dict[str, str], diff: str) -> dict[str, str]:
    """Apply a unified diff with ``git apply`` to copies of the editable files."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autoresearch-diff-") as tmp:
        for path, text in texts.items():
            (Path(tmp) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / path).write_bytes(text.encode("utf-8"))
        before = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*"))
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=tmp,
                              input=diff.encode("utf-8"),
                              capture_output=True, env={**os.environ, "GIT_CEILING_DIRECTORIES": tmp})
        if proc.returncode:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise PatchError(f"diff does not apply: {'; '.join(msg[:2]) or 'git apply failed'}", "diff")
        # the headers were checked; this checks the result too: the same files, each a regular file
        after = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*"))
        if after != before or any(not (Path(tmp) / path).is_file() or (Path(tmp) / path).is_symlink()
                                  for path in texts):
            raise _error(f"it adds, removes or replaces a file ({_ONLY_LINES})")
        return {path: (Path(tmp) / path).read_bytes().decode("utf-8") for path in texts}


class DiffKind(PatchKind):
    """``diff = '''...'''``, ``patch.diff(text)`` (once); the value is the diff's text."""

    name = "diff"
    fields = {"diff": "a unified diff of the editable files"}
    legacy = True

    def parse(self, raw, fail):
        diff = raw.get("diff")
        if diff is not None and (not isinstance(diff, str) or not diff.strip()):
            raise fail("diff must be a non-empty string holding a unified diff", "diff")
        return diff or None

    def from_calls(self, calls):
        texts = [_text(*args, **kwargs) for args, kwargs in calls]
        if len(texts) > 1:
            raise ValueError("call patch.diff() at most once (one unified diff per hypothesis)")
        return texts[0] if texts else None

    def apply(self, value, h, result: PatchResult, editable, protected):
        check_diff_paths(value, editable, protected)
        result.after.update(apply_diff(result.after, value))

    def describe(self, value, result):
        return ["diff"]

    def key(self, value):
        return {"diff": value}


def _text(text: str) -> str:
    return text


DIFF = DiffKind()
