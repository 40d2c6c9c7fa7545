"""The patch engine: ``set``, ``replace`` and ``diff`` applied to the editable files.

``set`` finds module-level assignments through the AST and splices the new value's source into
exactly the bytes of the old value, so every other byte of the file is left as it was.
"""
from __future__ import annotations

import ast
import difflib
import functools
import operator
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from autoresearch.errors import PatchError
from autoresearch.model import Hypothesis


@dataclass
class PatchResult:
    """The editable files before and after a patch, and what changed."""

    before: dict[str, str]
    after: dict[str, str]
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (NAME, old, new) of set

    @functools.cached_property
    def counts(self) -> tuple[int, int]:
        """(lines added, lines removed) over all editable files."""
        added = removed = 0
        for path, old in self.before.items():
            for line in difflib.unified_diff(old.splitlines(), self.after[path].splitlines(), lineterm="", n=0):
                if line.startswith("+") and not line.startswith("+++"):
                    added += 1
                elif line.startswith("-") and not line.startswith("---"):
                    removed += 1
        return added, removed


# -------------------------------------------------------------------------------------------
# set


_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _value(node: ast.AST) -> Any:
    """The value of a constant expression: a literal, or arithmetic on literals (``2**19``)."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        left, right = _value(node.left), _value(node.right)
        if isinstance(left, (int, float)) and isinstance(right, (int, float)) and (
                not isinstance(node.op, ast.Pow) or abs(right) < 1e4):  # no 10**10**9 bombs
            return _ARITH[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    raise ValueError("not a constant expression")


@functools.lru_cache(maxsize=64)
def assignments(source: str) -> dict[str, tuple[int, int, Any, bool]]:
    """Module-level ``NAME = value`` statements: name -> (start byte, end byte, value, known).

    A name assigned more than once maps to None (ambiguous: use replace instead).
    """
    tree = ast.parse(source)
    raw = source.encode()
    starts = [0] + [m.end() for m in re.finditer(rb"\n", raw)]
    table: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, node = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, node = stmt.target.id, stmt.value
        else:
            continue
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        try:
            value, known = _value(node), True
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            value, known = None, False
        table[name] = None if name in table else (begin, end, value, known)
    return table


def _compatible(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new)
    if isinstance(old, float) and isinstance(new, int):
        return True
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return True
    return type(old) is type(new)


def render(new: Any, old: Any, old_src: str) -> str:
    """Python source for `new`, in the old value's style (float stays float, tuple, quotes)."""
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        new = float(new)
    if isinstance(old, tuple) and isinstance(new, list):
        new = tuple(new)
    text = repr(new)
    if isinstance(new, float) and re.fullmatch(r"[-+]?[\d.]+[eE][-+]?\d+", old_src.strip()) and new != 0:
        text = exponent(new)  # 6e-4 -> 1e-3, not 0.001: the file's style
    if isinstance(new, str) and old_src.startswith('"') and '"' not in new and "'" not in new:
        text = '"' + text[1:-1] + '"'
    return text


def exponent(x: float) -> str:
    """The shortest exponent form that reads back as x: 0.001 -> 1e-3, 0.00015 -> 1.5e-4."""
    for digits in range(17):
        mantissa, power = f"{x:.{digits}e}".split("e")
        if float(f"{mantissa}e{power}") == x:
            return f"{mantissa}e{int(power)}"
    return repr(x)


def apply_set(source: str, values: tuple[tuple[str, Any], ...], filename: str,
              allow_type_change: bool = False, allow_new: bool = False) -> tuple[str, list[tuple[str, str, str]]]:
    """Assign constants by name; returns the new source and (NAME, old source, new source).

    With `allow_new`, a name the file lacks is added at its end (``NAME = value``)."""
    try:
        table = assignments(source)
    except SyntaxError as exc:
        raise PatchError(f"{filename} does not parse ({exc.msg} at line {exc.lineno})") from None
    raw = source.encode()
    edits, changes, added = [], [], []
    for name, new in values:
        if name not in table and allow_new:
            text = render(new, None, "")
            added.append(f"{name} = {text}")
            changes.append((name, "(new)", text))
            continue
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
            close += [n for n in table if n.lower() == name.lower() and n not in close]
            names = sorted(table)
            listed = ", ".join(names[:60]) + (f", and {len(names) - 60} more" if len(names) > 60 else "")
            hint = (f"did you mean {', '.join(close)}? " if close else "") + f"constants: {listed or 'none'}; " \
                "allow_new = true adds it"
            raise PatchError(f"set.{name}: {filename} has no module-level constant {name} ({hint})")
        if table[name] is None:
            raise PatchError(f"set.{name}: {name} is assigned more than once in {filename} (use replace)")
        begin, end, old, known = table[name]
        old_src = raw[begin:end].decode()
        if known and not allow_type_change and not _compatible(old, new):
            raise PatchError(f"set.{name}: type change from {type(old).__name__} ({old_src}) to "
                             f"{type(new).__name__} ({new!r}) (give a {type(old).__name__}, or set "
                             "allow_type_change = true)")
        text = render(new, old if known else None, old_src)
        edits.append((begin, end, text.encode()))
        changes.append((name, old_src, text))
    for begin, end, text in sorted(edits, reverse=True):
        raw = raw[:begin] + text + raw[end:]
    if added:
        newline = b"\r\n" if b"\r\n" in raw else b"\n"
        raw += (b"" if not raw or raw.endswith(b"\n") else newline) + newline.join(a.encode() for a in added) + newline
    return raw.decode(), changes


# -------------------------------------------------------------------------------------------
# replace and diff


def apply_replace(source: str, old: str, new: str, filename: str) -> str:
    count = source.count(old)
    first = old.strip().splitlines()[0] if old.strip() else old
    if count == 0:
        raise PatchError(f"replace: text not found in {filename}: {first[:60]!r} (give text that occurs exactly once)")
    if count > 1:
        raise PatchError(f"replace: text found {count} times in {filename}: {first[:60]!r} "
                         "(add surrounding lines so it occurs exactly once)")
    return source.replace(old, new, 1)


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


def diff_files(text: str) -> list[str]:
    """The files a unified diff changes, read from every header form, hunks skipped by their counts.

    Only changes to the lines of existing regular files are allowed: a header that creates,
    deletes, renames or copies a file, changes its mode (a symlink is mode 120000) or carries a
    binary patch is a :class:`PatchError`, as is a ``diff --git`` line whose two paths differ.
    """
    paths: list[str] = []
    lines = text.split("\n")  # as git reads a patch: \x0c, \x1c or \x85 break no line
    i = 0

    def strip(path: str) -> str:
        path = path.split("\t")[0].strip()
        if len(path) > 1 and path[0] == path[-1] == '"':  # git quotes odd names: refuse rather than guess
            raise PatchError(f"diff: a quoted file name {path} (only editable files, by their plain names, may change)")
        return path[2:] if path[:2] in ("a/", "b/") else path

    while i < len(lines):
        line = lines[i]
        m = _HUNK.match(line)
        if m:  # skip the hunk's body: its counts say how many old and new lines it holds
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
            continue
        for prefix, what in _REFUSED.items():
            if line.startswith(prefix):
                raise PatchError(f"diff: {line.strip()[:80]!r} {what} (a diff may only change lines of the editable "
                                 "files: no new, deleted, renamed, copied or binary files, no mode changes)")
        if line.startswith("diff --git "):
            parts = line[len("diff --git "):].split(" ")
            if len(parts) != 2 or strip(parts[0]) != strip(parts[1]):
                raise PatchError(f"diff: {line.strip()[:80]!r} names two different files (renames are refused; "
                                 "a diff may only change lines of the editable files)")
            paths.append(strip(parts[0]))
        elif re.match(r"index\s", line):
            m = _INDEX.match(line)
            if not m or (m.group(1) and m.group(1) not in ("100644", "100755")):
                mode = f"mode {m.group(1)} is not a regular file" if m else "not an index line git writes"
                raise PatchError(f"diff: {line.strip()[:80]!r}: {mode} (symlinks and submodules are refused)")
        elif line.startswith(("--- ", "+++ ")):
            path = strip(line[4:])
            if path == "/dev/null":
                raise PatchError(f"diff: {line.strip()[:80]!r} {'creates' if line[0] == '-' else 'deletes'} a file "
                                 "(a diff may only change lines of the editable files)")
            paths.append(path)
        i += 1
    if not paths:
        raise PatchError("diff: no '--- a/FILE' / '+++ b/FILE' headers (give a unified diff, as git diff prints)")
    return paths


def check_diff_paths(text: str, editable: list[str], protected: list[str]) -> None:
    for path in diff_files(text):
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or os.path.isabs(path):
            raise PatchError(f"diff: {path} is outside the repository (only {', '.join(editable)} may change)")
        if str(pure) in protected:
            raise PatchError(f"diff: touches protected file {path} (protected: {', '.join(protected)})")
        if str(pure) not in editable:
            raise PatchError(f"diff: touches {path}, which is not editable (editable: {', '.join(editable)})")


def apply_diff(texts: dict[str, str], diff: str) -> dict[str, str]:
    """Apply a unified diff with ``git apply`` to copies of the editable files."""
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
            raise PatchError(f"diff does not apply: {'; '.join(msg[:2]) or 'git apply failed'}")
        # the headers were checked; this checks the result too: the same files, each a regular file
        after = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*"))
        if after != before or any(not (Path(tmp) / path).is_file() or (Path(tmp) / path).is_symlink()
                                  for path in texts):
            raise PatchError("diff: it adds, removes or replaces a file (a diff may only change lines of the "
                             "editable files)")
        return {path: (Path(tmp) / path).read_bytes().decode("utf-8") for path in texts}


def apply_patch(h: Hypothesis, texts: dict[str, str], editable: list[str], protected: list[str]) -> PatchResult:
    """Apply a hypothesis' patch to the editable files' texts (nothing is written)."""
    target = h.file or editable[0]
    if target not in texts:
        raise PatchError(f"file: {target} is not an editable file (editable: {', '.join(editable)})")
    after = dict(texts)
    changes: list[tuple[str, str, str]] = []
    if h.set:
        after[target], changes = apply_set(after[target], h.set, target, h.allow_type_change, h.allow_new)
    for r in h.replace:
        after[target] = apply_replace(after[target], r.old, r.new, target)
    if h.diff:
        check_diff_paths(h.diff, editable, protected)
        after = apply_diff(after, h.diff)
    return PatchResult(before=dict(texts), after=after, changes=changes)
