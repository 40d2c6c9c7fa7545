"""`autoresearch --help` start-up time, and proof that the runner's process never imports torch.

Target: at most 0.3 s. The torch check runs the CLI in one process and then inspects
sys.modules; `python -X importtime` lists every module the start-up imported.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> dict[str, float]:
    exe = Path(sys.executable).with_name("autoresearch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "autoresearch"]
    times = []
    for _ in range(10):
        start = time.perf_counter()
        subprocess.run([*cmd, "--help"], cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    med = statistics.median(times)
    probe = ("import sys; from autoresearch.cli import main; main(['run', '--collect-only', 'experiments/']); "
             "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], cwd=ROOT, capture_output=True, text=True)
    torch_lines = [line for line in r.stderr.splitlines() if "| torch" in line or line.endswith(" torch")]
    verdict = [line for line in r.stderr.splitlines() if line.startswith("torch imported:")]
    print(f"startup: `autoresearch --help` median {med * 1000:.0f} ms over 10 runs (min {min(times) * 1000:.0f} ms; "
          f"target <= 300 ms); collecting experiments/: {verdict[0] if verdict else '?'}, "
          f"{len(torch_lines)} torch modules in -X importtime")
    return {"help_ms": med * 1000, "torch_modules": len(torch_lines)}


if __name__ == "__main__":
    main()
