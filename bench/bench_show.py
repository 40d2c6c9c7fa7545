"""Time of `autoresearch show` on a run of 1,000 experiments.

Target: it prints in at most 0.3 s. The run is synthetic but real on disk: a git project and a
ledger of 1,000 finished experiments (three runs each for one in ten, set changes, code changes,
crashes, several metrics), written through the runner's own ledger writer and read back as
`show` reads every run. Timed as a user runs it: the whole process, median of 7 after a warm-up
(its wall time and its CPU time, which a loaded machine inflates less), and the command's own work
in-process (best of 3).
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import scratch_project, in_process_config

N = 1000


def write_run(root: Path, n: int) -> None:
    from autoresearch.ledger import Ledger
    from autoresearch.reports import Report, RunResult

    run_dir = root / ".autoresearch" / "runs" / "big"
    run_dir.mkdir(parents=True)
    (root / ".autoresearch" / "current").write_text("big\n")
    ledger = Ledger(run_dir / "ledger.jsonl")
    ledger.append({"event": "session", "format": 2, "initial_commit": "0" * 40, "protected": {}})
    for seq in range(n):
        status = "crash" if seq % 13 == 5 else "keep" if seq % 7 == 0 else "discard"
        code = seq % 5 == 3
        value = 1.2 - seq * 1e-5 + (seq % 3) * 1e-3
        repeats = 3 if seq % 10 == 0 else 1
        runs = tuple(RunResult(0, 30.0, f"logs/{seq:03d}.log", seed=i, metrics={} if status == "crash" else {
            "val_bpb": value + i * 1e-4, "peak_vram_mb": 4096.0 + seq, "tokens_per_second": 1e5 + i,
            "training_seconds": 30.0}) for i in range(repeats))
        report = Report(seq=seq, tag="big", nodeid=f"experiments/h{seq:04d}.toml::h{seq:04d}", name=f"h{seq:04d}",
                        key="" if seq == 0 else f"{seq:016x}", description=f"hypothesis {seq}", hypothesis="bench",
                        status=status, reason=f"{status}: bench", metric="val_bpb", direction="minimize",
                        metrics={} if status == "crash" else dict(runs[0].metrics),
                        expectation="confirmed" if seq % 2 else "refuted",
                        changes=() if code or seq == 0 else ((f"P{seq % 12}", "0.01", f"{0.01 + seq * 1e-4:.4f}"),),
                        patch_kinds=("replace",) if code else ("set",) if seq else (), commit=f"{seq:040x}",
                        lines_added=4 if code else 1, lines_removed=1, duration=30.0 * repeats, runs=runs,
                        sigma=1e-3)
        ledger.append({"event": "start", "seq": seq, "key": report.key, "nodeid": report.nodeid, "time": 0})
        ledger.append({"event": "done", "report": report.to_dict(), "tip": report.commit})
        ledger.append({"event": "logged", "seq": seq})


def main() -> dict[str, float]:
    root = scratch_project(0)
    exe = Path(sys.executable).with_name("autoresearch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "autoresearch"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    try:
        write_run(root, N)
        first = subprocess.run([*cmd, "show"], cwd=root, capture_output=True, text=True, env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("\n") >= N + 2, first.stdout[-500:]
        times, cpu = [], []
        for _ in range(7):
            start, used = time.perf_counter(), os.times()
            subprocess.run([*cmd, "show"], cwd=root, capture_output=True, check=True, env=env)
            times.append(time.perf_counter() - start)
            after = os.times()
            cpu.append(after.children_user + after.children_system - used.children_user - used.children_system)
        os.chdir(root)
        from autoresearch.commands.show import show

        config = in_process_config(root, "show")
        inproc = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            show(config)
            inproc = min(inproc, time.perf_counter() - start)
        median = statistics.median(times)
        print(f"show: `autoresearch show` on a run of {N} experiments prints in {median:.3f}s (whole process, "
              f"median of 7; min {min(times):.3f}s; target <= 0.3 s), {statistics.median(cpu):.3f}s of CPU "
              f"(the wall time on an idle machine); the command's own work {inproc:.3f}s in-process; "
              f"load average {os.getloadavg()[0]:.1f}")
        return {"show_s": median, "show_cpu_s": statistics.median(cpu), "show_inprocess_s": inproc}
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
