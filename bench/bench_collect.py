"""Collecting and validating 1,000 TOML hypothesis files (every patch checked against train.py).

Target: at most 1 s. Measured in-process (the collection itself) and as a whole command
(`autoresearch run --collect-only`, start-up included).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from common import scratch_project, in_process_config

N = 1000


def main() -> dict[str, float]:
    root = scratch_project(N)
    try:
        os.chdir(root)
        from autoresearch.collect import collect

        config = in_process_config(root, "run")
        pm = config.pluginmanager
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            items, errors = collect(config, [root / "experiments"], pm.hook)
            best = min(best, time.perf_counter() - start)
        assert len(items) == N and not errors
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--collect-only"], cwd=root,
                           capture_output=True, text=True)
        command = time.perf_counter() - start
        assert r.returncode == 0, r.stderr
        print(f"collection: {N} TOML files collected and validated in {best:.3f}s in-process "
              f"(best of 3; target <= 1 s); `autoresearch run --collect-only` whole command {command:.2f}s")
        return {"collect_s": best, "command_s": command}
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
