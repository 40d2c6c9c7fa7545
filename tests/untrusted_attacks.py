"""The project, the attacks and the measurements of tests/test_untrusted.py.

The project: a fake ``train.py`` that saves its "model" (its LR, in ``model.txt``) and prints the
summary an honest run prints, and a protected evaluator ``evaluate.py`` that reads the model from
the run's folder and prints ``val_bpb: 1 + |LR - 0.03| * 10``. The candidate's own code replaces
one line of ``train.py`` (an ordinary ``[[replace]]`` hypothesis), after the model is saved.

Attack code is written with @NAME@ placeholders (braces are Python's): @REPO@ (the user's
checkout, as an absolute path: an agent knows where it works), @HOME@ (the runner's HOME), @MARK@
(a token the attack puts in the argv of what it starts, or in a file it makes, to be found
afterwards), @PID@ (the runner's pid), @TMP@ (the runner's temporary folder), @PY@ (the Python).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from autoresearch.gitcmd import SAFE

TRAIN = '''\
LR = 0.01
SLEEP = 0.0
import os, sys, time, random
with open("model.txt", "w") as f:
    f.write(repr(LR))
pass  # the candidate's own code
time.sleep(SLEEP)
val = 1.0 + abs(LR - 0.03) * 10
print("step 00001 (100.0%) | loss 2.500000 | remaining 0s", flush=True)
print("---")
print(f"val_bpb:          {val:.6f}")
print(f"peak_vram_mb:     1024.0")
'''
HOOK = "pass  # the candidate's own code\n"

EVALUATE = '''\
import sys
from pathlib import Path
lr = float(Path(sys.argv[1], "model.txt").read_text())
print(f"val_bpb: {1.0 + abs(lr - 0.03) * 10:.6f}")
'''

ATTACK_LR, NEXT_LR = 0.005, 0.025  # the attack is worse than the baseline (1.25 > 1.20); the next one better
FORGED = 0.5  # what a forger prints


def measured(lr: float) -> float:
    """What the protected evaluator measures for a model with this LR."""
    return round(1.0 + abs(lr - 0.03) * 10, 6)


def git(cwd: Path, *args: str) -> str:
    """git, with every program a repository's config could name turned off (a planted hook must
    not run because the test looked)."""
    return subprocess.run(["git", *SAFE, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_project(root: Path, evaluate: bool = True, settings: str = "") -> None:
    """The project of these tests, committed over the `repo` fixture's."""
    (root / "train.py").write_text(TRAIN)
    (root / "evaluate.py").write_text(EVALUATE)
    text = ('[tool.autoresearch]\ncommand = ["{python}", "train.py"]\n'
            'protected = ["prepare.py", "pyproject.toml", "evaluate.py"]\nrepeats = 1\nmax_repeats = 1\n')
    if evaluate:
        text += 'evaluate = ["{python}", "evaluate.py", "{output}"]\n'
    (root / "pyproject.toml").write_text(text + settings)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the untrusted-candidate project")


def hypothesis(root: Path, name: str, lr: float, code: str = "pass  # benign\n") -> None:
    """experiments/NAME.toml: an ordinary TOML hypothesis that sets LR and replaces one line."""
    assert "'''" not in code
    (root / "experiments" / f"{name}.toml").write_text(
        f'description = "{name}"\nhypothesis = "what {name} does"\n[set]\nLR = {lr}\n'
        f"[[replace]]\nold = {json.dumps(HOOK)}\nnew = '''\n{code.rstrip()}\n'''\n")


def fill(code: str, **values: str) -> str:
    for name, value in values.items():
        code = code.replace(f"@{name}@", value)
    return code


# ----------------------------------------------------------------------------------------------
# What a session leaves behind


def checkout(root: Path) -> dict[str, bytes]:
    """Every file of the user's checkout but the runner's own outputs, and what of .git no run may
    change: config, HEAD, attributes, hooks, every branch and tag but the run's own."""
    out: dict[str, bytes] = {}
    outputs = {"results.tsv", "experiments/journal.md", "experiments/lessons.md"}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".git/", ".autoresearch/")) or rel in outputs or not path.is_file():
            continue
        out[rel] = path.read_bytes()
    common = root / ".git"
    for name in ("config", "HEAD", "info/attributes", "packed-refs"):
        path = common / name
        out[f".git/{name}"] = path.read_bytes() if path.is_file() else b"absent"
    for path in sorted((common / "hooks").rglob("*")):
        out[f".git/{path.relative_to(common).as_posix()}"] = path.read_bytes() if path.is_file() else b"folder"
    refs = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags")
    out["refs"] = "\n".join(line for line in refs.splitlines()
                            if not line.startswith("refs/heads/autoresearch/")).encode()
    return out


VOLATILE = {"commit", "baseline_commit", "started", "duration", "log_path", "tip", "time", "prev", "initial_commit"}
JOURNAL_VOLATILE = [(re.compile(r"\b[0-9a-f]{7,40}\b"), "COMMIT"), (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"), "TIME"),
                    (re.compile(r"\d+m \d+s wall"), "WALL"), (re.compile(r"[\d.]+ CPU-hours"), "CPU")]


def _report(report: dict, own: bool) -> dict:
    """A report as it must come out of any session: for the attacked experiment itself, only its
    verdict and what the evaluator measured (its own printed numbers are its own business)."""
    if own:
        return {"status": report["status"], "cause": report["cause"], "val_bpb": report["metrics"].get("val_bpb")}
    out = {k: v for k, v in report.items() if k not in VOLATILE}
    out["runs"] = [{k: v for k, v in run.items() if k not in VOLATILE} for run in report.get("runs", [])]
    return out


def records(root: Path, own: str, upto: int | None = None) -> dict:
    """Every record of run t1 with what differs between any two sessions taken out (commits, times,
    folders); of the experiment named `own` (the attacked one), only its verdict and measurement.
    `upto`: only the experiments numbered below it (a session that stopped at the attack)."""
    run = root / ".autoresearch" / "runs" / "t1"
    keep = (lambda seq: True) if upto is None else (lambda seq: seq < upto)
    out: dict = {"ledger": [], "results": [], "journal": [], "logs": {}}
    for raw in (run / "ledger.jsonl").read_bytes().splitlines():
        entry = json.loads(raw)
        seq = entry.get("seq", entry.get("report", {}).get("seq", -1))
        if seq >= 0 and not keep(seq):
            continue
        if entry["event"] == "done":
            out["ledger"].append(("done", _report(entry["report"], entry["report"]["name"] == own)))
        else:
            out["ledger"].append({k: v for k, v in entry.items() if k not in VOLATILE | {"key"}})
    for path in (root / "results.tsv", run / "results.tsv"):
        if path.is_file():
            lines = path.read_text().splitlines()
            rows = [line.split("\t") for i, line in enumerate(lines[1:]) if keep(i)]
            # of the attacked experiment, what the evaluator measured and the verdict (the memory is its own word)
            out["results"].append([(row[1], row[3]) if row[4] == own else tuple(row[1:]) for row in rows])
    journal = root / "experiments" / "journal.md"
    text = journal.read_text() if journal.is_file() else ""
    text = text.replace(str(root), "ROOT")
    for regex, word in JOURNAL_VOLATILE:
        text = regex.sub(word, text)
    sections = text.split("\n### ")
    for section in sections[1:] if upto is None else sections[1:upto + 1]:
        if section.splitlines()[0].endswith(f"— {own}"):
            section = "\n".join(["OWN", *(line for line in section.splitlines() if line.startswith("**Status**"))])
        out["journal"].append(section)
    for log in sorted((run / "logs").glob("*.log")):
        seq = int(log.name[:3])
        if keep(seq) and not log.name[4:].startswith(f"{own}."):
            out["logs"][log.name] = log.read_bytes()
    return out


def branch(root: Path) -> list[str]:
    """The run's branch (its commits' subjects and trees: content only) and the names of its refs."""
    log = git(root, "log", "--format=%s %T", "refs/heads/autoresearch/t1").splitlines()
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/autoresearch/t1").splitlines()
    return log + refs


def everything(root: Path) -> bytes:
    """Every byte under the project (records, logs, worktrees, .git): where a leaked secret would be."""
    data = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                data.append(path.read_bytes())
        except OSError:
            pass
    return b"\n".join(data)


# ----------------------------------------------------------------------------------------------
# Processes


def marked(mark: str, run_dir: Path | None = None) -> list[int]:
    """Live processes with `mark` in their argv (or, with `run_dir`, the run's marker in their
    environment)."""
    needles = [mark.encode()]
    if run_dir is not None:
        needles.append(f"AUTORESEARCH_RUN={run_dir.resolve()}".encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            blobs = [(entry / "cmdline").read_bytes()]
            try:
                blobs.append((entry / "environ").read_bytes())
            except OSError:
                pass
        except (OSError, IndexError):
            continue
        if any(n in b for n in needles for b in blobs):
            found.append(int(entry.name))
    return found


def survivors(mark: str, run_dir: Path, grace: float = 3.0) -> list[int]:
    """What of the run is still alive after `grace` seconds (a SIGKILL takes a moment to land)."""
    deadline = time.monotonic() + grace
    while True:
        alive = marked(mark, run_dir)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
