"""``autoresearch init``: set up an existing training repository for autoresearch.

It writes what it can detect and asks, as TODOs that collection refuses until set, for what it
cannot: a commented ``[tool.autoresearch]`` table (the candidate editable files, the command,
the protected files that exist, git-ignored folders to link), ``experiments/`` with one example
hypothesis, and ``program.md``, the instructions an LLM agent follows to drive the loop. It never
overwrites a file: a ``pyproject.toml`` without the table gets it appended; one with it is left
as it is.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "__pycache__", "build", "dist", "tests", "test",
             ".autoresearch", "experiments", "site-packages"}
NOT_EDITABLE = {"setup.py", "conftest.py", "prepare.py", "__init__.py", "noxfile.py"}
PROTECT = ("prepare.py", "pyproject.toml", "uv.lock", "requirements.txt", "poetry.lock", "environment.yml")
LINK_SKIP = {".venv", "venv", "env", "__pycache__", ".autoresearch", ".pytest_cache", ".mypy_cache", "build", "dist",
             ".ipynb_checkpoints", "wandb", ".hypothesis"}


def constants(path: Path) -> dict[str, Any]:
    """A file's module-level constants with literal values (what ``set`` can assign)."""
    from autoresearch.patching import assignments

    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 1 << 20:
            return {}  # a FIFO, a device, a link, or no config file at 1 MiB: not read
        table = assignments(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    return {name: entry[2] for name, entry in table.items() if entry is not None and entry[3]
            and isinstance(entry[2], (int, float, str, bool)) and not name.startswith("__")}


def candidates(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """Python files (the root and one folder down) with at least two constants, best first:
    more constants first, a smaller file (a config file) on a tie."""
    found = []
    for path in sorted([*root.glob("*.py"), *root.glob("*/*.py")]):
        rel = path.relative_to(root)
        if rel.name in NOT_EDITABLE or rel.name.startswith(("test_", ".")) or any(
                part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        consts = constants(path)
        if len(consts) >= 2:
            found.append((rel.as_posix(), consts, path.stat().st_size))
    found.sort(key=lambda item: (-len(item[1]), item[2]))
    return [(rel, consts) for rel, consts, _ in found]


def script(root: Path) -> str:
    """The training script: train.py, else a train*.py, else a file with a __main__ block."""
    for name in ("train.py", "main.py"):
        if (root / name).is_file():
            return name
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("train"):
            return path.name
    for path in sorted(root.glob("*.py")):
        try:
            if "__main__" in path.read_text(encoding="utf-8", errors="replace"):
                return path.name
        except OSError:
            continue
    return "train.py"


def ignored_folders(root: Path) -> list[str]:
    """Top-level folders git ignores (a data folder a worktree would lack), bar tool folders."""
    proc = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--directory"],
                          cwd=root, capture_output=True, text=True)
    out = []
    for line in proc.stdout.splitlines():
        name = line.strip().rstrip("/")
        if name and "/" not in name and (root / name).is_dir() and name not in LINK_SKIP \
                and not name.endswith(".egg-info"):
            out.append(name)
    return out


ITERATIONS = re.compile(r"(?i)^(max_?iters?|num_?iters?|n_?iters?|iters|iterations|max_?steps|num_?steps|n_?steps|"
                        r"steps|train_?steps|total_?steps)$")


def iteration_flag(root: Path, train: str, consts: dict[str, Any]) -> tuple[str, Any] | None:
    """A command-line flag of the script that sets its iteration count (``--max_iters``), and the
    count it runs by default when known: the budget can then reach it as {budget_steps}."""
    try:
        text = (root / train).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for m in re.finditer(r"""["'](--[A-Za-z][\w-]*)["']""", text):  # argparse: add_argument("--max_iters", ...)
        name = m.group(1)[2:]
        if ITERATIONS.match(name.replace("-", "_")):
            value = next((v for k, v in consts.items() if k.lower() == name.replace("-", "_").lower()), None)
            return m.group(1), value
    if "sys.argv" in text:  # --key=value overrides of the config's globals, as nanoGPT's configurator does
        for name, value in consts.items():
            if ITERATIONS.match(name) and isinstance(value, int) and not isinstance(value, bool):
                return f"--{name}", value
    return None


def script_flags(root: Path, train: str) -> dict[str, Any]:
    """The script's command-line flags (argparse, click, typer), read from its source, never run."""
    from autoresearch.patches.flags import flags

    try:
        path = root / train
        return flags(path.read_text(encoding="utf-8", errors="replace")) if path.stat().st_size < 1 << 20 else {}
    except OSError:
        return {}


def given_command(root: Path, command: str | None) -> tuple[list[str], str | None, str]:
    """The command `init --command` gave (python becomes {python}), the config file it passes, and
    the training script (the command's first Python file, else :func:`script`)."""
    import shlex

    from autoresearch.patches.hints import config_from_command

    args = shlex.split(command) if command else []
    if args and re.fullmatch(r"python[\d.]*", Path(args[0]).name):
        args[0] = "{python}"
    train = next((a for a in args if a.endswith(".py") and (root / a).is_file()), None) or script(root)
    return args, config_from_command(root, args) if args else None, train


def table(root: Path, command_line: str | None = None, guide: bool = False) -> tuple[str, str | None, dict[str, Any]]:
    """The commented [tool.autoresearch] table; the editable file chosen and its constants. A config
    file that the given command passes (``python train.py config/x.py``) is the editable one.
    `guide`: program.md is written too, which tells the agent to write TOML only.
    (Long: one table, written top to bottom as the user reads it.)"""
    found = candidates(root)
    editable, consts = found[0] if found else (script(root), {})
    given, config_file, train = given_command(root, command_line)
    if config_file:
        editable, consts = config_file, constants(root / config_file)
        found = [(editable, consts)] + [c for c in found if c[0] != editable]
    protected = [p for p in PROTECT if (p == "pyproject.toml" or (root / p).is_file()) and p != editable]
    flag = iteration_flag(root, train, consts)
    command = given or ["{python}", train] + ([f"{flag[0]}={{budget_steps}}"] if flag else [])
    cli_flags = script_flags(root, train)
    if flag and flag[1] is None and flag[0].lstrip("-") in cli_flags:  # argparse's default, read from its source
        default = cli_flags[flag[0].lstrip("-")].default
        flag = (flag[0], default if isinstance(default, int) and not isinstance(default, bool) else None)
    if flag and isinstance(flag[1], int):
        steps = [f"budget_steps = {flag[1]}  # what {flag[0]} ran by default; the same work every run"]
    elif flag:
        steps = [f'budget_steps = "TODO: iterations per run, passed as {flag[0]}"']
    else:
        steps = ["# budget_steps = 1000"]
    links = ignored_folders(root)
    others = ", ".join(f"{rel} ({len(c)})" for rel, c in found[1:6])
    shown = ", ".join(list(consts)[:8]) + (", ..." if len(consts) > 8 else "")
    flag_names = ", ".join(("--" if len(n) > 1 else "-") + n for n in list(cli_flags)[:8])
    q = lambda items: "[" + ", ".join(json.dumps(i) for i in items) + "]"  # noqa: E731  TOML-safe quoting
    lines = [
        "[tool.autoresearch]",
        "# Written by `autoresearch init`: check every line. `autoresearch run --help` explains each key;",
        "# a run is refused while a value still starts with TODO.",
        "",
        f"# The files a hypothesis may change; `set` assigns their module-level constants ({shown or 'none found'}).",
        *([f"# {config_file} is the config file the command passes: it sets its values after {train} does."]
          if config_file else []),
        *([f"# {train}'s command-line flags ({flag_names}{', ...' if len(cli_flags) > 8 else ''}): an [args] "
           "table sets them (docs/patch-kinds-args.md)."] if cli_flags else []),
        *( [f"# Other candidates (constants): {others}"] if others else []),
        f"editable = {q([editable])}",
        "# Never changed by a hypothesis; verified unchanged before every run.",
        f"protected = {q(protected)}",
        "# The workload, run in a fresh git worktree of each experiment's commit. Placeholders: {python} (the",
        "# Python running autoresearch), {budget} (seconds), {budget_steps}, {seed}, {workdir}.",
        *([] if flag else ["# An iteration budget, for example: [\"{python}\", \"" + train
                           + "\", \"--max_iters={budget_steps}\"]"]),
        f"command = {q(command)}",
        "# The metric that decides keep or discard, and whether lower or higher is better.",
        'metric = "TODO: the name of the metric your script prints, e.g. val_loss"',
        'direction = "minimize"',
        "# How it is read: a line `val_loss: 2.61` works as it is. For another format, a regular expression",
        "# with a (?P<value>...) group, e.g. for `step 60: train loss 2.5, val loss 2.6`:",
        "# metric_pattern = 'val loss (?P<value>[-+0-9.eE]+)'",
        "# Folders git ignores that the workload needs (data, tokenizers): linked into every worktree.",
        f"link = {q(links)}",
        "# A budget for every run: seconds (the workload reads AUTORESEARCH_TIME_BUDGET) or steps",
        "# (AUTORESEARCH_MAX_STEPS, or {budget_steps} in the command).",
        "# budget = 300",
        *steps,
        *(["# program.md tells the agent to write hypotheses as TOML only (data, never code it imports).",
            "python_hypotheses = false"] if guide else []),
    ]
    return "\n".join(lines) + "\n", editable, consts


def args_example(train: str, cli_flags: dict[str, Any]) -> str | None:
    """One example [args] hypothesis: a real numeric flag of the script (learning-rate-like names
    first, never the iteration count the budget sets) changed from its default."""
    numeric = [f for f in cli_flags.values() if f.kind == "value" and isinstance(f.default, (int, float))
               and not isinstance(f.default, bool) and f.default and not ITERATIONS.match(f.name.replace("-", "_"))]
    if not numeric:
        return None
    f = sorted(numeric, key=lambda f: not re.search(r"(?i)lr|learning", f.name))[0]
    new = f.default * 2 if isinstance(f.default, float) else f.default + max(1, abs(f.default) // 4)
    option = ("-" if len(f.name) == 1 else "--") + f.name
    key = f.name if re.fullmatch(r"[A-Za-z0-9_-]+", f.name) else json.dumps(f.name)
    default = f.source or repr(f.default)
    return (f'# An example written by autoresearch init: change it, or delete it and write your own\n'
            f'# (autoresearch new "DESCRIPTION" --arg {f.name}=VALUE writes one for you).\n'
            f'description = "{option} {new!r} instead of {default}"\n'
            f'hypothesis = """Passing {option} {new!r} to {train} instead of its default {default}: an example to '
            f'see the loop work.\nSay here what you expect to happen and why."""\n'
            f"[args]\n{key} = {new!r}\n")


def example(editable: str, consts: dict[str, Any]) -> str | None:
    """One example hypothesis: a numeric constant changed, learning-rate-like names first."""
    numeric = [(n, v) for n, v in consts.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v]
    if not numeric:
        return None
    name, value = sorted(numeric, key=lambda nv: not re.search(r"(?i)lr|learning", nv[0]))[0]
    new = value * 2 if isinstance(value, float) else value + max(1, abs(value) // 4)
    return (f'# An example written by autoresearch init: change it, or delete it and write your own\n'
            f'# (autoresearch new "DESCRIPTION" --set NAME=VALUE writes one for you).\n'
            f'description = "{name} {new!r} instead of {value!r}"\n'
            f'hypothesis = """Changing {name} in {editable} from {value!r} to {new!r}: an example to see the loop work.\n'
            f'Say here what you expect to happen and why."""\n'
            f"[set]\n{name} = {new!r}\n")


def init(root: Path, say: Callable[[str], None], command: str | None = None) -> list[Path]:
    """Write what is missing; returns the files written (or appended to). `command` (init --command)
    is the workload's command line; a config file it passes is the editable file.

    One function, long: the checks that refuse before anything is written, then each file in the
    order it is written (pyproject.toml, experiments/, program.md), saying what it did."""
    from autoresearch.config import read_ini

    from autoresearch.errors import UsageError

    written: list[Path] = []
    for name in ("pyproject.toml", "program.md", "experiments", "experiments/example.toml"):
        path = root / name  # init writes only regular files and folders of the project, never through a link
        if path.is_symlink():
            raise UsageError(f"init: {name} is a symbolic link (to {os.readlink(path)}); init writes no file through "
                             "a link: replace it with a regular file, or remove it")
    if (root / "experiments").exists() and not (root / "experiments").is_dir():
        raise UsageError("init: experiments is a file; hypotheses go in a folder experiments/ (rename the file)")
    if (root / "pyproject.toml").exists() and not (root / "pyproject.toml").is_file():
        raise UsageError("init: pyproject.toml is not a file")
    program = root / "program.md"
    guide = not os.path.lexists(program)
    text, editable, consts = table(root, command, guide)
    pyproject = root / "pyproject.toml"
    settings: dict[str, Any] = {}
    if pyproject.is_file() and "[tool.autoresearch]" in pyproject.read_text(encoding="utf-8", errors="replace"):
        say(f"{pyproject.name} already has [tool.autoresearch]: left as it is")
        settings = read_ini(root)
        listed = settings.get("editable")
        editable = listed[0] if isinstance(listed, list) and listed and isinstance(listed[0], str) else editable
        if guide and settings.get("python_hypotheses", True) is not False:
            say("note: program.md tells the agent to write TOML only: set python_hypotheses = false in "
                "[tool.autoresearch] to refuse Python hypothesis files")
    else:
        try:
            existing = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
        except UnicodeDecodeError:
            raise UsageError("init: pyproject.toml is not UTF-8 text (TOML files must be): nothing written") from None
        with open(pyproject, "a", encoding="utf-8") as f:
            f.write(("\n" if existing and not existing.endswith("\n\n") else "") + text)
        written.append(pyproject)
        say(f"{'appended [tool.autoresearch] to' if existing else 'wrote'} {pyproject.name}: editable {editable}"
            + (f" ({len(consts)} constants)" if consts else ""))
    folder = root / "experiments"
    folder.mkdir(exist_ok=True)
    _, config_file, train = given_command(root, command)
    hypothesis = (None if config_file else args_example(train, script_flags(root, train))) or example(editable, consts)
    target = folder / "example.toml"
    if hypothesis and not target.exists() and not any(folder.glob("*.toml")):
        target.write_text(hypothesis, encoding="utf-8")
        written.append(target)
        say(f"wrote {target.relative_to(root)}: one example hypothesis")
    if not guide:
        say("program.md exists: left as it is")
    else:
        from autoresearch.guide import detect_metric, program as guide_text

        metric, direction, source = settings.get("metric"), settings.get("direction") or "minimize", "pyproject.toml"
        todo = not isinstance(metric, str) or metric.startswith("TODO")
        if settings and "metric" not in settings:
            metric, source = "val_bpb", "the default of the metric setting"
        elif todo:  # not set yet: what the script prints
            metric, direction = detect_metric(root, script(root)) or (None, "minimize")
            source = f"what {script(root)} prints; pyproject.toml's metric and direction decide"
        program.write_text(guide_text(editable, metric, str(direction), settings, source), encoding="utf-8")
        written.append(program)
        say("wrote program.md: the instructions an LLM agent follows to drive the loop")
    return written
