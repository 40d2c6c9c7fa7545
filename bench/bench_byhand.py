"""autoresearch against the protocol done by hand, side by side in one run, and where its time goes.

    python bench/bench_byhand.py [N] [--repeats R] [--compare DIR]
        N hypotheses (default 50), R rounds (default 3); --compare: also time the code of another checkout
        (e.g. `git worktree add DIR main`; its autoresearch/plugins must link to ../plugins, as the
        installed package maps it), in every round, for a before/after under the same load

The by-hand loop is what the seed's program.md asks of an agent, as a shell script: set the
constant, commit, run the workload, grep the metric, keep (the branch stays) or reset, append a
row to results.tsv. autoresearch does the same and more (baseline repeats for the noise, a run
folder without .git, the sandbox, the ledger, the journal). Both run the tests' fake workload in
scratch copies of one project; the overhead of each is its wall time per run of the workload
minus a bare run of the workload (measured between them, so load falls on all alike). The three
(by hand, autoresearch, autoresearch --sandbox off) take turns R times; the medians are printed.

Then the breakdown: one more run of each autoresearch variant in this process, every hook
implementation and the runner's parts timed exclusively (a part's time excludes the parts it
calls): what each promise costs per run, and what is left once the safety parts (the sandbox and
its launcher, the run folder, fsync, the checks after every run) are taken out, against the
shell loop. Targets (issue #26): autoresearch's overhead <= 1.2x the shell loop's; <= 25 ms per
experiment (bench_bookkeeping.py at 1,000 hypotheses).
"""
from __future__ import annotations

import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from common import scratch_project

BYHAND = r"""set -eu
best=""
for f in experiments/h*.toml; do
  lr=$(sed -n 's/^LR = //p' "$f")
  sed -i "s/^LR = .*/LR = $lr/" train.py
  git -c user.email=b@b -c user.name=b commit -qam "$f"
  "$PYTHON" train.py > run.log 2>&1 || true
  v=$(sed -n 's/^val_bpb: *//p' run.log)
  commit=$(git rev-parse --short=7 HEAD)
  if [ -n "$v" ] && { [ -z "$best" ] || awk "BEGIN{exit !($v < $best)}"; }; then
    best=$v; status=keep
  else
    git reset -q --hard HEAD~1; status=discard
  fi
  printf '%s\t%s\t0.0\t%s\t%s\n' "$commit" "${v:-0.000000}" "$status" "$f" >> results.tsv
done
"""


CPU: list[float] = [0.0]  # CPU seconds (user + system) of the last timed command and all it started


def timed_run(*args, **kw) -> subprocess.CompletedProcess:
    """subprocess.run, its CPU time (every process it started and waited for) left in CPU[0]: a
    figure the other processes of a loaded machine change far less than the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(*args, **kw)  # noqa: PLW1510 (check as the caller says)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[0] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return out


def bare(root: Path, n: int = 5) -> float:
    start, cpu = time.perf_counter(), 0.0
    for _ in range(n):
        timed_run([sys.executable, "train.py"], cwd=root, capture_output=True)
        cpu += CPU[0]
    CPU[0] = cpu / n
    return (time.perf_counter() - start) / n


def byhand(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    timed_run(["bash", "-c", BYHAND], cwd=root, check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - start, len((root / "results.tsv").read_text().splitlines())


def counted_runs(root: Path) -> tuple[int, int]:
    entries = [json.loads(x) for x in (root / ".autoresearch/runs/bench/results.jsonl").read_text().splitlines()]
    return len(entries), sum(len(e.get("runs") or [0]) for e in entries)


def autoresearch(root: Path, *flags: str, code: str = "") -> tuple[float, int, int]:
    """A run of `python -m autoresearch`; with `code`, the checkout there (--compare) first on the path."""
    env = {**os.environ, "PYTHONPATH": code} if code else None
    start = time.perf_counter()
    r = timed_run([sys.executable, "-m", "autoresearch", "run", "--tag", "bench", "-q", *flags], cwd=root,
                  capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    assert r.returncode == 0, r.stderr
    return (wall, *counted_runs(root))


# -- the breakdown ------------------------------------------------------------------------------


class Parts:
    """Exclusive timers: while a timed part runs, the part that called it is paused."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.local = threading.local()
        self.window = [0.0, 0.0]  # from the first experiment's measure to the session's finish
        self.final: dict[str, float] = {}  # the times then

    def enter(self, name: str) -> None:
        stack = self.local.__dict__.setdefault("stack", [])
        now = time.perf_counter()
        if stack:
            self.seconds[stack[-1][0]] += now - stack[-1][1]
        stack.append([name, now])

    def leave(self) -> None:
        stack, now = self.local.stack, time.perf_counter()
        name, since = stack.pop()
        self.seconds[name] += now - since
        if stack:
            stack[-1][1] = now

    def wrap(self, name: str, func):
        def timed(*args, **kw):
            self.calls[name] += 1
            self.enter(name)
            try:
                return func(*args, **kw)
            finally:
                self.leave()
        timed.bench_timed = True
        return timed

    def wrap_generator(self, name: str, func):
        """A hook wrapper (a generator): its code before and after the yield timed, not what it wraps."""
        def step(gen, how, value):
            self.enter(name)
            try:
                return how(gen, value)
            finally:
                self.leave()

        def timed(*args, **kw):
            self.calls[name] += 1
            gen = func(*args, **kw)
            value = step(gen, lambda g, _: next(g), None)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:  # noqa: BLE001 - handed on to the wrapper, as pluggy does
                    try:
                        value = step(gen, lambda g, e: g.throw(e), exc)
                    except StopIteration as stop:
                        return stop.value
                else:
                    try:
                        value = step(gen, lambda g, v: g.send(v), sent)
                    except StopIteration as stop:
                        return stop.value
        timed.bench_timed = True
        return timed

    def monitor(self, pm) -> None:
        """Every hook implementation timed under its plugin's name, wrapped when first called."""
        def before(hook_name, hook_impls, kwargs) -> None:
            if hook_name == "autoresearch_experiment_measure" and not self.window[0]:
                self.seconds.clear()
                self.calls.clear()
                self.window[0] = time.perf_counter()
            for impl in hook_impls:
                if not getattr(impl.function, "bench_timed", False):
                    name = f"hook: {impl.plugin_name.rpartition('.')[2]}"
                    wrap = self.wrap_generator if impl.wrapper or impl.hookwrapper else self.wrap
                    impl.function = wrap(name, impl.function)

            if hook_name == "autoresearch_sessionfinish" and not self.window[1]:  # the experiments are over
                self.window[1] = time.perf_counter()
                self.final = dict(self.seconds)

        pm.add_hookcall_monitoring(before, lambda *args: None)


def patch_parts(parts: Parts) -> list:
    """The runner's parts timed where they are looked up; returns what undoes it."""
    from autoresearch import execute, gitcmd, isolation, ledger, pluginmanager, repoguard
    from autoresearch.plugins import journal, results_tsv

    undo = []

    def put(owner, attr: str, part: str) -> None:
        real = getattr(owner, attr)
        undo.append((owner, attr, real))
        setattr(owner, attr, parts.wrap(part, real))

    for module in [m for name, m in list(sys.modules.items()) if name.startswith("autoresearch") and m is not None]:
        for attr in ("git", "ask"):
            if getattr(module, attr, None) is getattr(gitcmd, attr):
                put(module, attr, "git processes")
    put(execute, "tree", FOLDER)
    put(isolation, "make_run_folder", FOLDER)
    put(isolation, "remove", FOLDER)
    put(execute, "run_command", "launch")
    put(ledger.Ledger, "append", "ledger")
    put(os, "fsync", "fsync")
    put(repoguard.Guard, "verify", CHECKS)
    put(isolation, "pinned_files", CHECKS)
    put(journal.Journal, "append", "journal")
    put(results_tsv, "append_exactly", "results.tsv/jsonl")
    real_build = pluginmanager.build

    def build(*args, **kw):
        pm = real_build(*args, **kw)
        parts.monitor(pm)
        return pm
    undo.append((pluginmanager, "build", real_build))
    pluginmanager.build = build
    return undo


def breakdown(n: int, *flags: str) -> tuple[Parts, int, int, float]:
    """One run in this process, timed by part: (parts, experiments, runs, the bare workload's time)."""
    from autoresearch import cli

    root = scratch_project(n)
    parts = Parts()
    undo = patch_parts(parts)
    old = Path.cwd()
    os.chdir(root)
    try:
        floor = bare(root)
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            rc = cli.main(["run", "--tag", "bench", "-q", *flags])
        assert rc == 0, out.getvalue()[-2000:]
        floor = (floor + bare(root)) / 2
        return (parts, *counted_runs(root), floor)
    finally:
        for owner, attr, real in reversed(undo):
            setattr(owner, attr, real)
        os.chdir(old)
        shutil.rmtree(root, ignore_errors=True)


SANDBOX = "sandbox (namespaces: unshare, mounts)"
LAUNCHER = "launcher (a Python process: limits, exit status, orphans)"
FOLDER = "run folder (git archive, written, removed)"
CHECKS = "checks after each run (repo guard, pins)"
SAFETY = (SANDBOX, LAUNCHER, "fsync", FOLDER, CHECKS)
CORE = ("main", "collect", "loop", "isolation", "protocol", "execute", "metrics", "smoke")  # pluginmanager.ESSENTIAL


def table(auto: tuple, off: tuple, hand_ms: float, startup_ms: float) -> dict[str, float]:
    """Per run of the workload: what each part costs. The launcher is the --sandbox off run's launch
    less a bare run of the workload; the sandbox, what the default run's launch costs beyond that."""
    launch = {}
    for label, (parts, experiments, runs, floor) in (("auto", auto), ("off", off)):
        launch[label] = parts.final.get("launch", 0.0) / runs - floor
    parts, experiments, runs, floor = auto
    per = {name: s / runs for name, s in parts.final.items() if name != "launch"}
    window = (parts.window[1] - parts.window[0]) / runs
    rows: dict[str, float] = {SANDBOX: launch["auto"] - launch["off"], LAUNCHER: launch["off"]}
    rows.update((name, value) for name, value in per.items() if not name.startswith("hook: "))
    hooks = {name[6:]: value for name, value in per.items() if name.startswith("hook: ")}
    rows["git plugin's own Python (commit message, the run's ref)"] = hooks.pop("git-session", 0.0)
    core = sum(hooks.pop(name, 0.0) for name in CORE)
    others = sorted(((v, k) for k, v in hooks.items()), reverse=True)
    rows["other plugins (" + ", ".join(f"{k} {v * 1000:.1f}" for v, k in others[:5]) + ", ...)"] = sum(hooks.values())
    # what no part took: the core's own hooks (the loop, the protocol, the executor's Python) and the rest
    rows["the core runner's own Python (queue, session, protocol, reports, hook calls)"] = \
        core + window - floor - launch["auto"] - sum(per.values())
    rows["start-up and finish (interpreter, collection, worktrees), per run"] = startup_ms / 1000
    overhead = sum(rows.values())
    print(f"\nwhere autoresearch's overhead per run goes ({runs} runs, {experiments} experiments; ms per run; "
          f"exclusive times, one run in this process per variant, load {os.getloadavg()[0]:.1f}):")
    for name, value in rows.items():
        print(f"  {value * 1000:7.1f}  {name}{'  [safety]' if name in SAFETY else ''}")
    safety = sum(rows.get(k, 0.0) for k in SAFETY)
    pure = overhead - safety
    print(f"  {overhead * 1000:7.1f}  overhead in all (the headline's)")
    print(f"  {safety * 1000:7.1f}  of it the safety parts, which the shell loop does not do")
    print(f"  {pure * 1000:7.1f}  the rest, bookkeeping proper: {pure * 1000 / hand_ms:.2f}x the shell loop's "
          f"{hand_ms:.0f} ms (target <= 1.2x)")
    return {k: v * 1000 for k, v in rows.items()} | {"safety_ms": safety * 1000, "pure_ms": pure * 1000}


def main(n: int = 50, repeats: int = 3, compare: str = "") -> dict[str, float]:
    runs: dict[str, list[float]] = defaultdict(list)
    counts = {}
    for _ in range(repeats):
        roots = {name: scratch_project(n) for name in ("byhand", "auto", "off", *(["old"] if compare else []))}
        try:
            base, cpu = [], {}

            def floor_now(base=base, root=roots["byhand"]) -> None:
                base.append((bare(root), CPU[0]))

            if compare:  # the other checkout first, in the same round: before and after under the same load
                floor_now()
                old_wall, _, old_runs = autoresearch(roots["old"], code=compare)
                cpu["old"] = CPU[0] / old_runs
            floor_now()
            hand_wall, hand_runs = byhand(roots["byhand"])
            cpu["hand"] = CPU[0] / hand_runs
            floor_now()
            auto_wall, experiments, auto_runs = autoresearch(roots["auto"])
            cpu["auto"] = CPU[0] / auto_runs
            floor_now()
            off_wall, _, off_runs = autoresearch(roots["off"], "--sandbox", "off")
            cpu["off"] = CPU[0] / off_runs
            floor_now()
            floor = sum(b[0] for b in base) / len(base)
            floor_cpu = statistics.median(b[1] for b in base)
            if compare:
                runs["old"].append(old_wall / old_runs - floor)
            runs["hand"].append(hand_wall / hand_runs - floor)
            runs["auto"].append(auto_wall / auto_runs - floor)
            runs["off"].append(off_wall / off_runs - floor)
            for name, value in cpu.items():
                runs[f"{name} cpu"].append(value - floor_cpu)
            runs["floor"].append(floor)
            runs["floor cpu"].append(floor_cpu)
            runs["load"].append(os.getloadavg()[0])
            counts = {"hand": hand_runs, "auto": auto_runs, "experiments": experiments, "off": off_runs}
        finally:
            for root in roots.values():
                shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    hand, auto, off = med["hand"], med["auto"], med["off"]
    print(f"medians of {repeats} rounds (load {min(runs['load']):.1f}-{max(runs['load']):.1f}):")
    print(f"by hand (shell loop): {counts['hand']} runs; overhead {hand * 1000:.0f} ms per run "
          f"({', '.join(f'{x * 1000:.0f}' for x in runs['hand'])})")
    print(f"autoresearch:         {counts['auto']} runs ({counts['experiments']} experiments); overhead "
          f"{auto * 1000:.0f} ms per run = {auto / hand:.2f}x the shell loop's (target <= 1.2x) "
          f"({', '.join(f'{x * 1000:.0f}' for x in runs['auto'])})")
    print(f"  with --sandbox off: {counts['off']} runs; overhead {off * 1000:.0f} ms per run = {off / hand:.2f}x "
          f"({', '.join(f'{x * 1000:.0f}' for x in runs['off'])})")
    if compare:
        print(f"  the checkout in {compare}: overhead {med['old'] * 1000:.0f} ms per run = {med['old'] / hand:.2f}x "
              f"({', '.join(f'{x * 1000:.0f}' for x in runs['old'])})")
    print(f"a bare run of the fake workload: {med['floor'] * 1000:.0f} ms")
    print(f"CPU time per run beyond a bare run's {med['floor cpu'] * 1000:.0f} ms (user + system, every process; "
          "the figure load changes least): " + ", ".join(
              f"{name} {med[name + ' cpu'] * 1000:.0f} ms" for name in ("hand", "auto", "off", "old")
              if name + " cpu" in med) + f"; autoresearch / shell loop {med['auto cpu'] / med['hand cpu']:.2f}x")
    auto_parts = breakdown(n)
    off_parts = breakdown(n, "--sandbox", "off")
    # start-up and finish per run: the headline's overhead less what the in-process run's window shows
    parts, _, runs_in, floor = auto_parts
    window = (parts.window[1] - parts.window[0]) / runs_in - floor
    rows = table(auto_parts, off_parts, hand * 1000, max(0.0, auto - window) * 1000)
    return {"byhand_ms": hand * 1000, "auto_ms": auto * 1000, "off_ms": off * 1000, "ratio": auto / hand,
            **rows}


if __name__ == "__main__":
    args = sys.argv[1:]
    opts = {"--repeats": "3", "--compare": ""}
    for flag in opts:
        if flag in args:
            i = args.index(flag)
            opts[flag] = args[i + 1]
            del args[i:i + 2]
    main(int(args[0]) if args else 50, int(opts["--repeats"]), opts["--compare"])
