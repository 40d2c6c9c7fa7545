"""``autoresearch calibrate``: run the unmodified code N times and print its noise, the smallest
improvement the verdict settings can detect, and what they cost in experiments per hour."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError

MAX_RUNS = 1000  # calibrate --runs: more is a mistake (a day of runs), as for any number (config.RANGES)


def main(config: Any) -> int:
    return calibrate(config, print)


def calibrate(config: Any, say: Any) -> int:
    """Run the unmodified code (the checkout's HEAD) `--runs` times, seeds 0 to N-1, in a scratch
    worktree, and print the noise and what the verdict settings make of it. Nothing of a run
    (branch, ledger, results) is touched.

    One function, long: a scratch worktree, the runs in it, and what they say, in the order printed."""
    import math
    import os
    import shutil
    import subprocess
    import time
    from types import SimpleNamespace

    from autoresearch import stats
    from autoresearch.execute import classify, command, timeout
    from autoresearch.reports import ExitCode

    n = config.getoption("runs")
    if not 2 <= n <= MAX_RUNS:
        raise UsageError(f"--runs {n}: give from 2 to {MAX_RUNS} runs (calibrating needs at least 2; 5 or more give "
                         "a usable sigma)")
    metric, k = config.get("metric"), config.get("noise_k", 2.0)
    repeats, max_repeats = config.get("repeats", 5), max(config.get("max_repeats", 5), config.get("repeats", 5))
    root = config.rootdir
    scratch = config.state_dir / "calibrate"
    work, logs = scratch / "worktree", scratch / "logs"
    shutil.rmtree(scratch, ignore_errors=True)
    logs.mkdir(parents=True)
    git = (root / ".git").exists()
    if git:
        from autoresearch.gitrepo import common_dir, exclude

        common = common_dir(root)
        if common:  # the state folder stays untracked, as a run keeps it
            exclude(common, [config.get("state_dir")])
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)
        done = subprocess.run(["git", "worktree", "add", "--detach", "-q", str(work), "HEAD"], cwd=root,
                              capture_output=True, text=True)
        if done.returncode:
            raise UsageError(f"cannot make a scratch worktree of HEAD: {done.stderr.strip()} (commit your code first)")
        from autoresearch.execute import link_into

        link_into(config, work)
    else:
        state = config.state_dir.resolve()
        shutil.copytree(root, work, symlinks=True, ignore=lambda d, names: [x for x in names if Path(d, x).resolve() == state])
    budget, steps = config.get("budget"), config.get("budget_steps")
    say(f"calibrate: {n} runs of the unmodified code ({'HEAD' if git else 'the project'}), seeds 0 to {n - 1}, "
        f"budget {f'{budget:g} s' if budget else 'the workload default'}"
        + (f", {steps} steps" if steps else "") + f"; logs in {logs}")
    values, walls = [], []
    stand_in = SimpleNamespace(session=SimpleNamespace(config=config), nodeid="calibrate", name="calibrate")
    try:
        for seed in range(n):
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUTORESEARCH_SEED": str(seed), "AUTORESEARCH_TAG": "calibrate",
                   "AUTORESEARCH_EXPERIMENT": "calibrate"}
            if budget:
                env["AUTORESEARCH_TIME_BUDGET"] = f"{budget:g}"
            if steps:
                env["AUTORESEARCH_MAX_STEPS"] = str(steps)
            log = logs / f"run-{seed}.log"
            start = time.monotonic()
            from autoresearch.execute import run_command

            result = run_command(command(config, SimpleNamespace(workdir=work, seed=seed)), work, log, env,
                                 timeout(config))
            walls.append(time.monotonic() - start)
            found: dict[str, float] = {}
            for part in reversed(config.hook.autoresearch_parse_metrics(experiment=stand_in, log_path=log)):
                found.update(part or {})
            result = classify(result.__class__(**{**result.__dict__, "metrics": found}), metric)
            if not result.ok:
                say(f"  run {seed + 1}/{n} (seed {seed}): crash — {result.message or result.cause} (log: {log})")
                continue
            values.append(result.metrics[metric])
            say(f"  run {seed + 1}/{n} (seed {seed}): {metric} {values[-1]:.6f} in {walls[-1]:.1f} s")
    finally:
        if git:
            subprocess.run(["git", "worktree", "remove", "--force", str(work)], cwd=root, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if len(values) < 2:
        say(f"calibrate: {len(values)} of {n} runs printed {metric}: no noise to measure (see the logs above)")
        return ExitCode.STOPPED
    sigma, df = stats.pooled_sigma([values])
    assert sigma is not None
    mean = math.fsum(values) / len(values)
    wall = math.fsum(walls) / len(walls)
    say(f"{metric} {stats.fmt(mean, sigma, len(values))}: σ {sigma:.3g} run to run "
        f"(range {min(values):.6f} to {max(values):.6f}); {wall:.0f} s a run")
    say(stats.floor(sigma, df, metric, k, repeats, max_repeats))
    for line in tails(values, sigma):
        say(line)
    say(f"with noise_k {k:g}, repeats {repeats}, max_repeats {max_repeats}: improvements of "
        f"{stats.detectable(sigma, k, repeats, max_repeats):.2g} and more are kept about 4 times in 5")
    choices = {(r, m): simulated(config, r, m, k) for r, m in sorted({(3, 3), (4, 5), (repeats, max_repeats),
                                                                        (5, 8), (8, 10)})}
    if all(choices.values()):  # the verdict plugin (or one replacing it) simulates its rule
        say(f"the choices, on a simulated loop of 40 null changes and 10 real gains of 2 σ ({CALIBRATE_SESSIONS} sessions):")
        say(f"  {'repeats, max_repeats':>21} {'detects':>9} {'2σ gains kept':>14} {'nulls kept':>11} "
            f"{'runs/decision':>14} {'experiments/hour':>17}")
        for (r, m), (kept, nulls, per_decision) in choices.items():  # type: ignore[misc]
            mark = "  <- these settings" if (r, m) == (repeats, max_repeats) else ""
            say(f"  {f'{r}, {m}':>21} {stats.detectable(sigma, k, r, m):>9.2g} {kept:>14.0%} {nulls:>11.1%} "
                f"{per_decision:>14.2f} {3600 / (max(wall, 1e-3) * per_decision):>17.1f}{mark}")
    if sigma == 0:
        say("the runs were identical: the plain comparison decides, and repeats cost time for nothing "
            "(set repeats = 1)")
    return ExitCode.OK


CALIBRATE_SESSIONS = 40


def tails(values: list[float], sigma: float) -> list[str]:
    """The tail shape of the runs against a Gaussian's, and the design and estimates it calls for."""
    from autoresearch import noise

    if len(values) < 4 or not sigma:
        return []
    kurtosis, largest, expected = noise.tail_shape(values)
    scale = noise.robust_sigma([values]) or sigma
    wild = [i for i, f in enumerate(noise.flags(values, scale)) if f]
    heavy = kurtosis > 1.5 or largest > expected + 1.0 or bool(wild)
    out = [f"tails: excess kurtosis {kurtosis:+.1f} (Gaussian 0), the largest deviation {largest:.1f} σ "
           f"(a Gaussian sample of {len(values)} gives about {expected:.1f} σ)"
           + (f"; run {', '.join(str(i + 1) for i in wild)} beyond {noise.OUTLIER:g} robust σ" if wild else "")]
    if heavy:
        out.append("recommended: design unpaired, with the robust estimates (on by default: a wild run is "
                   "flagged and left out, and a keep resting on one waits for one more run); with runs this "
                   "wild, consider repeats 7 and max_repeats 10")
    else:
        out.append("recommended: design unpaired with the defaults (tails like a Gaussian's); pairing runs by "
                   "seed pays only where the seed fixes most of the noise (docs/noise.md)")
    return out


def simulated(config: Any, repeats: int, max_repeats: int, k: float) -> tuple[float, float, float] | None:
    """(share of 2-sigma gains kept, share of null changes kept, runs a decision) of the verdict's
    rule with these settings, simulated (autoresearch_verdict_simulate; None when no plugin
    simulates it): the rule works in units of sigma, so sigma 1."""
    import random

    rng, effects = random.Random(0), [2.0 if i % 5 == 4 else 0.0 for i in range(50)]
    results = []
    for _ in range(CALIBRATE_SESSIONS):
        sessions = config.hook.autoresearch_verdict_simulate(config=config, repeats=repeats, max_repeats=max_repeats,
                                                              noise_k=k, effects=effects, rng=rng)
        if not sessions:
            return None
        results += sessions[0]
    reals, nulls = [x for x in results if x[0]], [x for x in results if not x[0]]
    return (sum(x[1] for x in reals) / len(reals), sum(x[1] for x in nulls) / len(nulls),
            sum(x[2] for x in results) / len(results))
