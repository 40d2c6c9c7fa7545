"""Collection: find hypothesis files, read them (TOML and Python collectors), select with -k.

Everything is validated before anything runs: every patch is applied, in memory, to the current
editable files, so a bad file is reported as ``path:line: message`` and nothing starts.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from autoresearch import hookimpl
from autoresearch.config import inside, positive
from autoresearch.errors import CollectError, PatchError, UsageError
from autoresearch.finding import NORECURSE, NOT_HYPOTHESES, find_files, relpath  # noqa: F401 (public here)
from autoresearch.model import Hypothesis
from autoresearch.names import COMMIT
from autoresearch.kinds import registry
from autoresearch.keywords import keyword_matcher  # noqa: F401 (public here)
from autoresearch.readers import _locator, collect_python, collect_toml, decorates  # noqa: F401 (decorates: public)


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("-k", dest="keyword", metavar="EXPR", default=None,
                     help="only run hypotheses whose node id or tags match EXPR: substrings combined "
                          "with and, or, not and parentheses, e.g. -k 'lr and not embed'")
    parser.addoption("--collect-only", "--co", dest="collect_only", action="store_true",
                     help="list what would run and check every patch against the current files; run nothing")
    parser.addsetting("editable", type="list", default=["train.py"], help="the files hypotheses may change",
                      check=lambda v: inside(v) if v else "give at least one file")
    parser.addsetting("protected", type="list", default=["prepare.py", "pyproject.toml", "uv.lock"], check=inside,
                      help="files no hypothesis may change, verified unchanged before every run")
    parser.addsetting("max_sweep", type="int", default=1000, check=positive,
                      help="the most hypotheses one sweep may make (a mistyped sweep can make millions)")
    parser.addsetting("python_hypotheses", "--python-hypotheses", type="bool", default=True,
                      help="collect Python hypothesis files (trusted code); turn off to accept "
                           "agent-written hypotheses as data only (TOML)")
    parser.addsetting("collect_timeout", type="float", default=30.0,
                      check=lambda v: None if 0 < v <= 3600 else "must be more than 0 and at most 3600 (seconds)",
                      help="seconds that importing one Python hypothesis file (and calling its functions) may take; "
                           "a file still running then is an error, not a hang")


@hookimpl(trylast=True)
def autoresearch_collect_file(file_path: Path, config) -> list[Hypothesis] | None:
    rel = relpath(file_path, config.rootdir)
    if file_path.suffix == ".toml":
        return collect_toml(file_path, rel, config.get("max_sweep"), registry(config))
    if file_path.suffix == ".py":
        return collect_python(file_path, rel, config)
    return None


# -------------------------------------------------------------------------------------------
def order_by_baseline(items: list[Hypothesis]) -> list[Hypothesis]:
    """A hypothesis whose baseline is another hypothesis runs after it (stable otherwise)."""
    by_name = {h.name: h for h in items}
    ordered: list[Hypothesis] = []
    placed: set[str] = set()

    def place(h: Hypothesis, stack: tuple[str, ...]) -> None:
        if h.name in placed:
            return
        dep = by_name.get(h.baseline)
        if dep is not None and dep.name not in stack:
            place(dep, stack + (h.name,))
        placed.add(h.name)
        ordered.append(h)

    for h in items:
        place(h, ())
    return ordered


@hookimpl(trylast=True)
def autoresearch_collection_modifyitems(session, config, items: list[Hypothesis]) -> None:
    """Select with -k, then run each hypothesis after the one it names as its baseline."""
    expr = config.getoption("keyword")
    if expr:
        match = keyword_matcher(expr)
        named = {h.name: h for h in items}
        items[:] = [h for h in items if match(h)]
        if session is not None:
            session.deselected = len(named) - len(items)  # "N deselected", as pytest says it
        chosen = {h.name for h in items}
        for h in items:
            if h.baseline in named and h.baseline not in chosen and not config.getoption("resume"):
                base = named[h.baseline]
                raise UsageError(f"{h.path}:{h.line}: baseline {h.baseline!r} ({base.nodeid}) is not selected by "
                                 f"-k {expr!r}, so {h.name} has nothing to start from (select both, or name "
                                 "\"best\" as its baseline)")
    items[:] = order_by_baseline(items)


# -------------------------------------------------------------------------------------------


def editable_texts(config, root: Path | None = None) -> dict[str, str]:
    """The editable files' texts, every byte as it is (CRLF stays CRLF): regular UTF-8 files only."""
    root = root or config.rootdir
    texts = {}
    for name in config.editable:
        path = root / name
        if path.is_symlink():
            raise UsageError(f"editable file {name} is a symbolic link (to {os.readlink(path)}): a patch would "
                             "change or read what it points to; make it a regular file, or leave it out of editable")
        real, meant = os.path.realpath(path), os.path.join(os.path.realpath(root), os.path.normpath(name))
        if real != meant:
            raise UsageError(f"editable file {name} leads through a linked folder to {real}: a patch would change "
                             "what it points to; make its folders regular ones, or leave it out of editable")
        if not path.is_file():
            raise UsageError(f"editable file {name} not found in {root} (set editable = [...] "
                             "in [tool.autoresearch])")
        try:
            texts[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[:exc.start].count(b"\n") + 1
            raise UsageError(f"{name}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); hypotheses "
                             "patch text files, so save it as UTF-8") from None
    from autoresearch.patches.argv import ARGS_FILE  # the args and overrides kinds' file, once a patch made it

    if ARGS_FILE not in texts and (root / ARGS_FILE).is_file() and not (root / ARGS_FILE).is_symlink():
        texts[ARGS_FILE] = (root / ARGS_FILE).read_bytes().decode("utf-8", errors="replace")
    return texts


def key_line(config, h: Hypothesis, key: str) -> int:
    """The line of `key` in a TOML hypothesis (its table's first line for a Python one)."""
    if not h.path.endswith(".toml"):
        return h.line
    try:
        text = (config.rootdir / h.path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return h.line
    return _locator(text, h.line - 1)(key)


def passed_on_command_line(config, name: str) -> str | None:
    """The command's argument that sets `name` too (``--max_iters=20`` for max_iters), if any."""
    wanted = name.lower().replace("-", "_")
    args = list(config.get("command") or [])
    for i, arg in enumerate(args):
        m = re.match(r"^--?([A-Za-z][\w.-]*)(=.*)?$", arg)
        if m and m.group(1).lower().replace("-", "_").split(".")[-1] == wanted:
            value = m.group(2) or (f" {args[i + 1]}" if i + 1 < len(args) else "")
            return f"{arg.split('=')[0]}{value}"
    return None


def warnings_for(config, h: Hypothesis, patch: Any) -> list[str]:
    """What collection warns about in a hypothesis that applies: patches that change nothing the run sees."""
    out = []
    where = lambda kind, key: f"{h.path}:{key_line(config, h, key)}: warning: {kind}.{key}"  # noqa: E731  (lazy: rare)
    for kind, name, old, new in ((k, *change) for k, changes in patch.by_kind.items() for change in changes):
        key = name.lstrip("-") if kind == "args" else name  # a flag's key in its table: learning-rate
        if old == new:
            file = patch.files.get(kind) or h.file or config.editable[0]
            out.append(f"{where(kind, key)} = {new} changes nothing ({name} is already {old} in {file})")
        passed = passed_on_command_line(config, name) if kind == "set" else None  # a flag that overrides a constant
        if passed:
            out.append(f"{where(kind, key)}: the command also passes {passed}, which wins (the run never sees this "
                       "change; take it out of the command, or use {budget_steps} there)")
    from autoresearch.patches.hints import command_warnings  # flags, overrides, config files on the command line

    return out + command_warnings(config, h, patch, where)


def unprintable_name(file: Path, rootdir: Path) -> CollectError | None:
    """A file whose name holds a control or invisible character (it would reach the terminal and
    the journal): one escaped line, the file not read."""
    shown = relpath(file, rootdir)
    if shown.isprintable():
        return None
    from autoresearch.reports import printable

    return CollectError(printable(shown), 1, "the file's name holds a control or invisible character (rename the file)")


def collect(config, paths: list[Path], hook: Any, warn: bool = True) -> tuple[list[Hypothesis], list[CollectError]]:
    """Every hypothesis under `paths`, validated; errors are gathered, not raised. Warnings (a patch
    that changes nothing, a protected file that does not exist) go to stderr when `warn`."""
    items: list[Hypothesis] = []
    errors: list[CollectError] = []
    for file in find_files(paths, config):
        bad_name = unprintable_name(file, config.rootdir)
        if bad_name is not None:
            errors.append(bad_name)
            continue
        try:
            items += hook.autoresearch_collect_file(file_path=file, config=config) or []
        except CollectError as exc:
            errors.append(exc)
    from autoresearch.patches import apply_patch  # here, so that --help stays fast

    texts = editable_texts(config)
    seen: dict[str, Hypothesis] = {}
    for h in items:
        if h.name in seen:
            first = seen[h.name]
            errors.append(CollectError(h.path, h.line, f"duplicate name {h.name!r}, first defined at "
                                                        f"{first.path}:{first.line} (names must be unique)"))
            continue
        seen[h.name] = h
        try:
            patch = apply_patch(h, texts, config.editable, config.protected, config.get("command"))
        except PatchError as exc:
            line = key_line(config, h, exc.key) if exc.key else h.line  # set.LR: the line of LR
            errors.append(CollectError(h.path, line, str(exc)))
            continue
        if warn:
            for line in warnings_for(config, h, patch):
                print(line, file=sys.stderr)
    if warn and items:
        for name in config.protected:
            if not (config.rootdir / name).exists() and name not in ("uv.lock",):
                print(f"autoresearch: warning: protected file {name} does not exist (protected = [...] in "
                      "[tool.autoresearch] lists it; nothing guards it)", file=sys.stderr)
    for h in items:
        if h.baseline in ("best", "initial") or h.baseline in seen:
            continue
        if not COMMIT.fullmatch(h.baseline):
            errors.append(CollectError(h.path, h.line, f"baseline {h.baseline!r} is unknown (\"best\", \"initial\", "
                                                        "a collected hypothesis' name, or a commit hash)"))
        elif not is_commit(config.rootdir, h.baseline):
            errors.append(CollectError(h.path, h.line, f"baseline {h.baseline!r} is not a commit of this repository "
                                                        "(give a hash git log shows, a hypothesis' name, \"best\" or "
                                                        "\"initial\")"))
    for h in items:  # a hypothesis must not wait on itself through others
        chain, name = [h.name], h.baseline
        while name in seen and name not in chain:
            chain.append(name)
            name = seen[name].baseline
        if name == h.name and len(chain) > 1:
            errors.append(CollectError(h.path, h.line, "baseline cycle: " + " -> ".join(chain + [name])
                                       + " (each names the next as its baseline; one must start from \"best\" or "
                                         "\"initial\")"))
    return items, errors


def is_commit(root: Path, rev: str) -> bool:
    import subprocess

    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root,
                          capture_output=True)
    return proc.returncode == 0


def collect_session(session) -> list[CollectError]:
    """Collect and select the session's hypotheses (``session.items``); returns the errors."""
    config = session.config
    paths = config.option.file_or_dir or config.get("paths")
    # a PATH given on the command line is relative to the current folder; a setting, to the root
    base = Path.cwd() if config.option.file_or_dir else config.rootdir
    session.paths = [(base / p).absolute() for p in paths]
    items, errors = collect(config, session.paths, config.hook)
    config.hook.autoresearch_collection_modifyitems(session=session, config=config, items=items)
    session.items = items
    config.hook.autoresearch_collection_finish(session=session)
    return errors
