"""The stop/resume soak: stop the runner with random signals at random moments, resume until the
run is done, and check what the README promises against an uninterrupted run of the same project.

Used briefly by tests/test_soak.py and at length by bench/soak.py. Stops, chosen at random:

    sigkill        SIGKILL to the runner
    sigkill-group  SIGKILL to its whole process group, as a CI cancel or a preempted machine does
    sigterm        SIGTERM to the runner
    sigint         SIGINT to the runner
    ctrl-c         SIGINT to its process group, as Ctrl-C at a terminal sends it

Each stop is filed under the phase the runner was in, read from markers a plugin of the project
writes (``conftest.py``): interpreter (before any code of ours ran), start-up, session (the
branch and worktree), setup (patch and commit), training, verdict, logging, between experiments,
finish. Half the stops come at a random moment of the run; the other half a random few
milliseconds after the runner enters a phase chosen at random, so the short phases (a commit, a
reset, the ledger's write, the logging) are hit as often as the long ones.

After every graceful stop (SIGTERM, SIGINT, Ctrl-C): exit 130 or 143 (0 only once the run was
finishing), no traceback, every worktree clean, and no more results recorded after the stop than
experiments were in flight. At the end of every run: the rows of the uninterrupted run, one
COMPLETED journal entry for every PLANNED one, refs, branch, locks and workloads as they must be.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("sigkill", "sigkill-group", "sigterm", "sigint", "ctrl-c")
TAG = "soak"

TRAIN = '''\
LR = 0.01
DEPTH = 4
CRASH = ""
import sys, time
for step in range(4):
    print(f"step {step:05d} | loss {3.0 - step * 0.1:.4f}", flush=True)
    time.sleep(0.04)
if CRASH:
    print("ValueError: synthetic failure")
    sys.exit(3)
print("---")
print(f"val_bpb:          {1.0 + abs(LR - 0.03) * 10 + (DEPTH - 2) * 0.01:.6f}")
print(f"peak_vram_mb:     {1024.0 * DEPTH:.1f}")
'''

# A plugin that marks each phase as the runner enters it: "<monotonic time> <pid> <phase>".
PHASES = '''\
import os, time
from autoresearch import hookimpl

OUT = os.environ.get("SOAK_PHASES")


def mark(phase):
    if OUT:
        with open(OUT, "a") as f:
            f.write(f"{time.monotonic():.6f} {os.getpid()} {phase}\\n")


mark("start-up")


@hookimpl(tryfirst=True)
def autoresearch_sessionstart(session):
    mark("session")


@hookimpl(tryfirst=True)
def autoresearch_experiment_setup(experiment):
    mark("setup")


@hookimpl(tryfirst=True)
def autoresearch_experiment_logstart(experiment):
    mark("training")


@hookimpl(tryfirst=True)
def autoresearch_make_verdict(experiment):
    mark("verdict")


@hookimpl(tryfirst=True)
def autoresearch_experiment_logreport(report):
    mark("logging")


@hookimpl(trylast=True)
def autoresearch_experiment_teardown(experiment, report):
    mark("between experiments")


@hookimpl(tryfirst=True)
def autoresearch_sessionfinish(session, exitstatus):
    mark("finish")
'''

HYPOTHESES = {
    "a_lr_up": 'description = "raise LR"\nhypothesis = "h"\n[set]\nLR = 0.02\n',  # keep
    "b_lr_down": 'description = "lower LR"\nhypothesis = "h"\n[set]\nLR = 0.001\n',  # discard
    "c_crash": 'description = "crash"\nhypothesis = "h"\n[set]\nCRASH = "yes"\n',  # crash
    "d_depth": 'description = "one layer less"\nhypothesis = "h"\n[set]\nDEPTH = 3\n',  # keep
    "e_from_a": ('description = "deeper, on a"\nhypothesis = "h"\nbaseline = "a_lr_up"\n'
                 '[set]\nDEPTH = 5\n'),  # discard: worse than its baseline a
    "f_sweep": 'description = "LR {LR}"\nhypothesis = "h"\n[sweep]\nLR = [0.03, 0.05]\n',  # keep, discard
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "train.py").write_text(TRAIN)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    (root / "conftest.py").write_text(PHASES)
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         "lessons_every = 2\n")
    (root / "experiments").mkdir()
    for name, text in HYPOTHESES.items():
        (root / "experiments" / f"{name}.toml").write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.email=s@s", "-c", "user.name=s", "commit", "-qm", "init")
    return root


def rows(project: Path) -> list[tuple[str, str, str]]:
    """(description, status, value) of each results.tsv row."""
    path = project / "results.tsv"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines()[1:]:
        _commit, value, _memory, status, description = line.split("\t")
        out.append((description, status, value))
    return out


def start(project: Path, phases: Path, workers: int = 1) -> subprocess.Popen:
    args = ["run", "--tag", TAG, "-n", str(workers)]
    args += ["--resume"] if (project / ".autoresearch" / "runs" / TAG).is_dir() else []
    return subprocess.Popen([sys.executable, "-m", "autoresearch", *args], cwd=project, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=as_at_a_terminal,
                            env={**os.environ, "SOAK_PHASES": str(phases)})


def as_at_a_terminal() -> None:
    """The runner starts with the signals' default actions, as a command typed at a terminal does,
    whatever the soak inherited: started with `&` (a background job), SIGINT is ignored, and a Ctrl-C
    before the entry point's first instruction would be lost rather than end the interpreter."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def phase_at(phases: Path, pid: int, when: float) -> str:
    phase = "interpreter"
    if phases.exists():
        for line in phases.read_text().splitlines():
            t, p, name = line.split(" ", 2)
            if int(p) == pid and float(t) <= when:
                phase = name
    return phase


def stop(proc: subprocess.Popen, kind: str) -> None:
    sig = signal.SIGKILL if kind.startswith("sigkill") else signal.SIGTERM if kind == "sigterm" else signal.SIGINT
    try:
        if kind in ("sigkill-group", "ctrl-c"):
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


EXPECTED_RC = {"sigkill": {-9}, "sigkill-group": {-9}, "sigterm": {143}, "sigint": {130}, "ctrl-c": {130}}
# Before any code of ours runs, Python itself handles the signal: death by SIGTERM, or a
# KeyboardInterrupt in the interpreter's own start-up. Nothing of the run can have changed yet.
INTERPRETER_RC = {"sigterm": {-15}, "sigint": {-2, 1, 130}, "ctrl-c": {-2, 1, 130}}


@dataclass
class Stats:
    stops: Counter = field(default_factory=Counter)  # (kind, phase) -> count
    violations: list[str] = field(default_factory=list)
    sessions: int = 0
    attempts: int = 0

    def merge(self, other: Stats) -> None:
        self.stops.update(other.stops)
        self.violations += other.violations
        self.sessions += other.sessions
        self.attempts += other.attempts

    def table(self) -> str:
        phases = sorted({p for _, p in self.stops}, key=lambda p: PHASE_ORDER.index(p) if p in PHASE_ORDER else 99)
        head = f"{'phase':<22}" + "".join(f"{k:>15}" for k in KINDS) + f"{'all':>8}"
        lines = [head]
        for p in phases:
            counts = [self.stops[(k, p)] for k in KINDS]
            lines.append(f"{p:<22}" + "".join(f"{c:>15}" for c in counts) + f"{sum(counts):>8}")
        totals = [sum(self.stops[(k, p)] for p in phases) for k in KINDS]
        lines.append(f"{'all':<22}" + "".join(f"{c:>15}" for c in totals) + f"{sum(totals):>8}")
        return "\n".join(lines)


# Before its session has remade the worktrees a runner has touched none: what is in them then is an
# earlier runner's (a SIGKILLed runner's git may still be at work there), and the session remakes them
EARLY = ("interpreter", "start-up", "session")
PHASE_ORDER = ["interpreter", "start-up", "session", "setup", "training", "verdict", "logging",
               "between experiments", "finish"]


def reference(tmp: Path) -> tuple[list[tuple[str, str, str]], float]:
    """The rows of an uninterrupted run of the project, and how long it took."""
    project = make_project(tmp / "reference")
    began = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--tag", TAG], cwd=project,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return rows(project), time.monotonic() - began


TARGETS = ["start-up", "session", "setup", "training", "verdict", "logging", "between experiments", "finish"]


def entered(phases: Path, pid: int, phase: str) -> int:
    """How many times the runner `pid` has entered `phase` so far."""
    try:
        text = phases.read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line.endswith(f" {pid} {phase}"))


def wait_for_moment(proc: subprocess.Popen, phases: Path, duration: float, rng: random.Random) -> None:
    """Wait for a random moment of the run: any moment, or just after it enters a chosen phase."""
    if rng.random() < 0.5:
        deadline = time.monotonic() + rng.uniform(0.0, duration * 1.1)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
        return
    phase, nth = rng.choice(TARGETS), rng.choice((1, 1, 2))
    offset = rng.uniform(0.0, 0.004 if rng.random() < 0.5 else 0.03)  # short phases last a few ms
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and entered(phases, proc.pid, phase) < nth:
        time.sleep(0.001)
    time.sleep(offset)


def soak_session(project: Path, expected: list, duration: float, stops: int, rng: random.Random,
                 workers: int = 1) -> Stats:
    """Stop a run `stops` times at random, resuming each time, then let it finish; check it."""
    stats = Stats(sessions=1)
    initial_head = git(project, "rev-parse", "HEAD")
    for n in range(stops + 1):
        # each runner marks its phases in a file of its own: pids come round again within minutes on a
        # busy machine, and an earlier runner's markers under the same pid would misplace the stop
        phases = project.parent / f"{project.name}.{n}.phases"
        proc = start(project, phases, workers)
        stats.attempts += 1
        kind = rng.choice(KINDS)
        stopped_at = None
        if n < stops:
            left = 1 - len(rows(project)) / len(expected)
            wait_for_moment(proc, phases, duration * (0.15 + 0.85 * left), rng)
            if proc.poll() is None:
                stopped_at, recorded = time.monotonic(), len(rows(project))
                stop(proc, kind)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            stats.violations.append(f"{project.name}: {kind}: the runner hung after the stop")
            continue
        rc = proc.returncode
        if stopped_at is None:
            if rc != 0:
                stats.violations.append(f"{project.name}: attempt {n} exited {rc} without a stop: {err[-600:]}")
                continue
            break  # the run is done
        phase = phase_at(phases, proc.pid, stopped_at)
        stats.stops[(kind, phase)] += 1
        # a graceful stop is 130 or 143 from the first instruction of ours to the last; 0 only once the
        # session is finishing (the run was done before the signal came)
        allowed = EXPECTED_RC[kind] | ({0} if phase == "finish" or kind.startswith("sigkill") else set()) | (
            INTERPRETER_RC.get(kind, set()) if phase == "interpreter" else set())
        if rc not in allowed:
            stats.violations.append(f"{project.name}: {kind} in {phase}: exit {rc}: {err.strip()[-600:]}")
        elif "Traceback" in err and phase != "interpreter":
            stats.violations.append(f"{project.name}: {kind} in {phase}: a traceback: {err.strip()[-600:]}")
        # a graceful stop stops the run: at most the experiments in flight are recorded after it (a stop
        # Python lost let a run stopped as it started record every experiment, exit 143 only at its end)
        if not kind.startswith("sigkill") and rc != 0 and len(rows(project)) > recorded + workers:
            stats.violations.append(f"{project.name}: {kind} in {phase}: the run went on after the stop: "
                                    f"{len(rows(project)) - recorded} results recorded after it (at most {workers})")
        if not kind.startswith("sigkill"):  # a graceful stop leaves the tree as a resume expects it
            dirty = dirty_worktrees(project)
            if dirty and phase not in EARLY:
                stats.violations.append(f"{project.name}: {kind} in {phase}: a dirty worktree after the stop: {dirty}")
        if rc == 0:  # the run is done
            break
    else:
        stats.violations.append(f"{project.name}: never finished")
    stats.violations += [f"{project.name}: {v}" for v in check(project, expected, initial_head, workers)]
    return stats


def dirty_worktrees(project: Path) -> str:
    run_dir = project / ".autoresearch" / "runs" / TAG
    for work in sorted(run_dir.glob("worktree*")) if run_dir.is_dir() else []:
        if (work / ".git").exists():
            status = subprocess.run(["git", "status", "--porcelain"], cwd=work, capture_output=True, text=True).stdout
            if status.strip():
                return f"{work.name}: {status.strip()}"
    return ""


def check(project: Path, expected: list, initial_head: str, workers: int = 1) -> list[str]:
    """Every promise, on the final state of a soaked run."""
    from autoresearch import procs
    from autoresearch.model import slug

    bad = []
    got = rows(project)
    if got != expected:
        bad.append(f"rows differ from the uninterrupted run:\n  got      {got}\n  expected {expected}")
    run_dir = project / ".autoresearch" / "runs" / TAG
    entries = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()] if (
        run_dir / "results.jsonl").exists() else []
    if [e["seq"] for e in entries] != sorted({e["seq"] for e in entries}):
        bad.append("results.jsonl has a number twice")
    baselines = [e for e in entries if not e["key"]]
    if len(baselines) != 1 or not entries or entries[0]["key"]:
        bad.append(f"the baseline ran {len(baselines)} times, or not first")
    kept = [e for e in entries if e["status"] == "keep"]
    tip = git(project, "rev-parse", f"autoresearch/{TAG}")
    if kept and tip != kept[-1]["commit"]:
        bad.append(f"the branch is at {tip[:7]}, not at the last kept commit {kept[-1]['commit'][:7]}")
    for e in entries:
        if e["key"] and e["runs"][0]["cause"] not in ("patch-failed", "conflict"):  # those made no commit
            ref = f"refs/autoresearch/{TAG}/{e['seq']:03d}-{slug(e['name'])}"
            try:
                at = git(project, "rev-parse", ref)
            except subprocess.CalledProcessError:
                at = "(missing)"
            if at != e["commit"]:
                bad.append(f"{ref} is {at[:9]}, not the experiment's commit {e['commit'][:7]}")
    worktree = run_dir / "worktree"
    if worktree.exists() and git(worktree, "status", "--porcelain"):
        bad.append(f"the worktree is dirty: {git(worktree, 'status', '--porcelain')}")
    if git(project, "rev-parse", "HEAD") != initial_head or git(project, "rev-parse", "--abbrev-ref", "HEAD") != "main":
        bad.append("the user's checkout moved")
    if git(project, "status", "--porcelain", "--untracked-files=no"):
        bad.append(f"the user's files changed: {git(project, 'status', '--porcelain', '--untracked-files=no')}")
    if procs.marked(run_dir):
        bad.append(f"workloads still running: {procs.marked(run_dir)}")
    locks = sorted(str(p.relative_to(project)) for p in (project / ".git").rglob("*.lock"))
    if locks:
        bad.append(f"git locks left: {locks}")
    lock = project / ".autoresearch" / "lock"
    if lock.exists():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            bad.append("the run's lock is still held")
        finally:
            os.close(fd)
    journal = (project / "experiments" / "journal.md").read_text() if (project / "experiments" / "journal.md").exists() else ""
    completed = [part for part in journal.split("**Status**: COMPLETED")[1:]
                 if not part.lstrip().startswith("**Actual outcome**: interrupted")]
    if len(completed) != len(expected):
        bad.append(f"the journal has {len(completed)} COMPLETED entries for {len(expected)} experiments")
    planned, ended = journal.count("**Status**: PLANNED"), journal.count("**Status**: COMPLETED")
    # every PLANNED entry has its COMPLETED (or interrupted) one, never an orphan, for any number of workers
    if planned != ended:
        bad.append(f"the journal has {planned} PLANNED entries but {ended} COMPLETED or interrupted ones")
    open_entries = Counter()  # ... and each experiment's own, by the markers its entries end with
    for seq, kind in re.findall(rf"<!-- autoresearch {TAG} (\d+) (planned|completed) -->", journal):
        open_entries[int(seq)] += 1 if kind == "planned" else -1
    if any(open_entries.values()):
        bad.append(f"PLANNED entries without one COMPLETED entry each (experiment: PLANNED - COMPLETED): "
                   f"{ {k: v for k, v in sorted(open_entries.items()) if v} }")
    return bad


def run(tmp: Path, stops: int, per_session: int, seed: int = 0, say=print, workers: int = 1,
        seconds: float | None = None) -> Stats:
    """Soak runs of the project until `stops` stops have landed (or `seconds` have passed: the run
    under way is finished and checked), at most `per_session` per run; the rows are checked against
    an uninterrupted run with one worker, whatever `workers` is."""
    expected, duration = reference(tmp)
    rng = random.Random(seed)
    total = Stats()
    deadline = time.monotonic() + seconds if seconds else None
    while sum(total.stops.values()) < stops and (deadline is None or time.monotonic() < deadline):
        project = make_project(tmp / f"s{total.sessions:04d}")
        result = soak_session(project, expected, duration / workers, per_session, rng, workers)
        total.merge(result)
        for v in result.violations:
            say(f"VIOLATION {v}")
        if total.sessions % 10 == 0:
            say(f"... {sum(total.stops.values())} stops in {total.sessions} runs, {len(total.violations)} violations")
    return total
