"""The reference workload on this machine: val_bpb, MFU, peak memory and tokens/s after a budget.

Defaults of train.py, the default corpus (the standard library's sources), a 60-second budget
(``python bench/bench_workload.py 300`` for the full one). On a CPU, the reference point: a plain
nanoGPT-style byte model of about 0.9 M parameters did about 15,000 tokens/s and reached 3.54
bits per byte on the same corpus in 60 s on this kind of machine. On a GPU these are the figures
to record (docs/benchmarks.md says what an H100 or H200 should show, as an estimate).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(budget: float = 60.0) -> dict[str, float]:
    env = {**os.environ, "AUTORESEARCH_TIME_BUDGET": f"{budget:g}"}
    subprocess.run([sys.executable, "prepare.py"], cwd=ROOT, check=True, env=env)
    r = subprocess.run([sys.executable, "train.py"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+):\s+([-\d.]+)$", r.stdout, re.M)}
    device = (re.findall(r"^device:\s+(\S+)", r.stdout, re.M) or ["?"])[-1]
    tok_s = s["total_tokens_M"] * 1e6 / s["training_seconds"]
    cpu = device == "cpu"
    print(f"workload: {budget:g}s budget on {device} — val_bpb {s['val_bpb']:.4f}"
          + (" (reference 3.54)" if cpu else "") + f", MFU {s['mfu_percent']:.2f} %"
          + (" (not measured on a CPU)" if cpu else "") + f", peak memory {s['peak_vram_mb']:.0f} MB"
          + (" (resident)" if cpu else " (allocated by torch)") + f", {tok_s:,.0f} tokens/s"
          + (" (reference ~15,000)" if cpu else "") + f", {s['num_steps']:.0f} steps, {s['num_params_M']} M params, "
          f"total {s['total_seconds']:.0f}s")
    return {"val_bpb": s["val_bpb"], "mfu_percent": s["mfu_percent"], "peak_memory_mb": s["peak_vram_mb"],
            "tokens_per_s": tok_s}


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
