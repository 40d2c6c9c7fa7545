"""What the trust boundary costs per run: the run folder, the launcher, the sandbox, the evaluator.

The fake workload (prints its summary at once) runs N times each way, measured side by side in
one process, through the runner's own `run_command`:

    bare        the command itself (how runs were started before the boundary)
    off         a fresh run folder + the launcher, no sandbox (sandbox = "off")
    subreaper   + the subreaper (sandbox = "auto" where namespaces are unavailable)
    namespaces  + user, mount, PID and network namespaces (sandbox = "auto" on Linux)
    evaluator   namespaces + a protected evaluator run after each run (a script that prints a metric)

Target (issue #21): the sandbox and evaluator add at most 50 ms per run beyond the evaluator's own
work (its Python start-up, measured here as a bare run of the evaluator script).
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import FAKE_TRAIN

from autoresearch import isolation
from autoresearch.execute import run_command

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 30
EVALUATOR = "import sys\nprint('val_bpb: 1.0')\n"


def config(level: str, root: Path | None = None):
    values = {"hide": [], "sandbox_network": False, "max_file_mb": 65536.0, "paths": ["experiments"]}
    return SimpleNamespace(get=lambda k, d=None: values.get(k, d), state_dir=Path(tempfile.gettempdir()) / "x",
                           editable=["train.py"], protected=[],
                           rootdir=root or Path(tempfile.gettempdir()) / "project")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> dict[str, float]:
    source = Path(tempfile.mkdtemp(prefix="autoresearch-bench-src-"))
    (source / "train.py").write_text(FAKE_TRAIN)
    (source / "evaluate.py").write_text(EVALUATOR)
    logs = Path(tempfile.mkdtemp(prefix="autoresearch-bench-logs-"))
    ok, why = isolation.probe(False)
    levels = ["off", "subreaper"] + (["namespaces", "evaluator"] if ok else [])
    cmd = [sys.executable, "train.py"]
    tree = isolation.archive(config("off"), "", source)  # the runner keeps a commit's files so, in memory
    times: dict[str, list[float]] = {name: [] for name in ["bare", *levels, "evaluator-bare"]}
    try:
        for i in range(N):  # interleaved, so the machine's load falls on every variant alike
            log = logs / f"{i}.log"
            times["bare"].append(timed(lambda: run_command(cmd, source, log, {"PATH": "/usr/bin"}, 60)))
            times["evaluator-bare"].append(timed(lambda: run_command(
                [sys.executable, "evaluate.py"], source, log, {"PATH": "/usr/bin"}, 60)))
            for name in levels:
                level = isolation.Level("namespaces" if name == "evaluator" else
                                        {"off": "none"}.get(name, name), "")

                def one() -> None:
                    folder = isolation.make_run_folder(config(name), tree, "bench")
                    try:
                        env = isolation.clean_env({}, str(folder))
                        r = run_command(isolation.wrap(level, config(name), cmd, folder, [folder]), folder, log, env, 60)
                        assert r.returncode == 0, (name, log.read_text())  # never time a failed run
                        if name == "evaluator":
                            scratch = Path(tempfile.mkdtemp())
                            argv = isolation.wrap(level, config(name), [sys.executable, "evaluate.py"], source,
                                                  readonly=[folder], writable=[scratch])
                            run_command(argv, source, log, env, 60)
                            isolation.remove(scratch)
                    finally:
                        isolation.remove(folder)

                times[name].append(timed(one))
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    med = {k: statistics.median(v) * 1000 for k, v in times.items() if v}
    print(f"sandbox cost per run (median of {N}, ms; {'namespaces available' if ok else 'no namespaces: ' + why}):")
    for name in ["bare", *levels]:
        extra = med[name] - med["bare"] - (med["evaluator-bare"] if name == "evaluator" else 0.0)
        print(f"  {name:<11} {med[name]:7.1f}   +{extra:6.1f} over bare" +
              ("  (beyond the evaluator's own run)" if name == "evaluator" else ""))
    return med


if __name__ == "__main__":
    main()
