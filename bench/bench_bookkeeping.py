"""The runner's bookkeeping per experiment, at 50, 300 and 1,000 hypotheses.

    python bench/bench_bookkeeping.py [N ...]        # default: 50 300 1000

A real ``autoresearch run`` in this process (git plugin, ledger, results.tsv, journal, verdict,
terminal: every built-in plugin), on a scratch project of N hypotheses, with one change: the
workload's run is an executor in the project's conftest.py that writes the fake workload's
summary to the run's log at once, with no process. So the time per experiment is the runner's
own: its Python (queue, ledger, results, noise, journal, ...) and its git processes, which are
counted and timed apart. It prints, per N: the mean over all experiments, the mean over the
last 50 (the cost once the history holds nearly N reports: it must not grow with N), git
processes per experiment and their time, and the rest (the bookkeeping proper).
Target (issue #26): <= 25 ms per experiment at 1,000 hypotheses, not growing with N.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from common import scratch_project

EXECUTOR = '''
import re, time
from autoresearch import hookimpl
from autoresearch.reports import RunResult

TIMES = []  # when each experiment's run happened (perf_counter), read by the benchmark


@hookimpl(tryfirst=True)
def autoresearch_experiment_run(experiment):
    """The fake workload's summary, at once, without a process (what tests/conftest.py prints)."""
    TIMES.append(time.perf_counter())
    text = (experiment.workdir / "train.py").read_text()
    lr = float(re.search(r"^LR = (.*)$", text, re.M).group(1))
    val = 1.0 + abs(lr - 0.03) * 10 + 0.02
    path = experiment.log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"step 00001 (100.0%) | loss 2.5 | remaining 0s\\n---\\nval_bpb:          {val:.6f}\\n"
                    f"peak_vram_mb:     4096.0\\ndepth:            4\\n")
    return RunResult(returncode=0, duration=0.0, log_path=str(path), seed=experiment.seed)
'''


class Counted:
    """subprocess.Popen, counted and timed (every git process the runner starts goes through it)."""

    def __init__(self) -> None:
        self.count, self.seconds, self.argv0 = 0, 0.0, {}
        self.real = subprocess.Popen.__init__

    def __enter__(self):
        counter = self

        def init(popen, args, *a, **kw):
            counter.count += 1
            name = os.path.basename(str(args[0] if isinstance(args, (list, tuple)) else args))
            counter.argv0[name] = counter.argv0.get(name, 0) + 1
            start = time.perf_counter()
            counter.real(popen, args, *a, **kw)
            counter.seconds += time.perf_counter() - start

        subprocess.Popen.__init__ = init
        return self

    def __exit__(self, *exc) -> None:
        subprocess.Popen.__init__ = self.real


def wait_time(counter: Counted):
    """Time spent waiting on the processes: subprocess.run's communicate, timed."""
    real = subprocess.Popen.communicate

    def communicate(popen, *a, **kw):
        start = time.perf_counter()
        try:
            return real(popen, *a, **kw)
        finally:
            counter.seconds += time.perf_counter() - start

    subprocess.Popen.communicate = communicate
    return real


def one(n: int) -> dict[str, float]:
    root = scratch_project(n)
    (root / "conftest.py").write_text(EXECUTOR)
    subprocess.run(["git", "add", "conftest.py"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "executor"], cwd=root, check=True)
    from autoresearch import cli

    old = Path.cwd()
    os.chdir(root)
    try:
        with Counted() as counter:
            real = wait_time(counter)
            try:
                start = time.perf_counter()
                out = io.StringIO()
                with redirect_stdout(out), redirect_stderr(out):
                    rc = cli.main(["run", "--tag", "bench", "-q", "--sandbox", "off"])
                wall = time.perf_counter() - start
            finally:
                subprocess.Popen.communicate = real
        assert rc == 0, out.getvalue()[-2000:]
        times = sys.modules["autoresearch_conftest"].TIMES
        sys.modules.pop("autoresearch_conftest", None)
        runs = len(times)
        per = (times[-1] - times[0]) / (runs - 1)
        tail = min(50, runs - 1)
        last = (times[-1] - times[-1 - tail]) / tail
        git_per, git_ms = counter.count / runs, counter.seconds / runs * 1000
        print(f"{n:5d} hypotheses: {runs} runs in {wall:.1f}s; per run {per * 1000:5.1f} ms "
              f"(the last {tail}: {last * 1000:5.1f} ms); processes (git) {git_per:.1f} per run "
              f"({git_ms:.1f} ms); the rest {per * 1000 - git_ms:5.1f} ms")
        return {"n": n, "per_ms": per * 1000, "last_ms": last * 1000, "git_per": git_per,
                "rest_ms": per * 1000 - git_ms}
    finally:
        os.chdir(old)
        shutil.rmtree(root, ignore_errors=True)


def main(sizes: list[int]) -> list[dict[str, float]]:
    return [one(n) for n in sizes]


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [50, 300, 1000])
