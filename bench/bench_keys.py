"""`--collect-only` on 1,000 `[keys]` hypotheses, for a YAML, a JSON and a TOML config file.

Each hypothesis assigns one key (a table's float, a list item, a string, an integer, in turn) with
a value of its own, so no two patches are alike. Measured in-process, best of 3: collection as
bench_collect.py times it (every patch applied to the config file), then with the listing that
`--collect-only` prints (which applies each patch again), and the patches alone; then as a whole
command (`autoresearch run --collect-only`, start-up included). The same for 1,000 `[set]`
hypotheses on train.py follows, as a reference measured under the same load.

Target: at most 0.5 s in-process for each format.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import scratch_project, in_process_config

N = 1000
CONFIGS = {
    "yaml": ("config.yaml", "# sampling\nmodel:\n  temperature: 0.7  # how random\n  layers: [16, 32, 64]\n"
                            "  act: relu\ndata:\n  shuffle: true\n  batch: 32\n"),
    "json": ("config.json", '{\n  "model": {\n    "temperature": 0.7,\n    "layers": [16, 32, 64],\n'
                            '    "act": "relu"\n  },\n  "data": {"shuffle": true, "batch": 32}\n}\n'),
    "toml": ("config.toml", "# sampling\n[model]\ntemperature = 0.7  # how random\nlayers = [16, 32, 64]\n"
                            "act = \"relu\"\n[data]\nshuffle = true\nbatch = 32\n"),
}


def keys_project(fmt: str) -> Path:
    name, text = CONFIGS[fmt]
    root = scratch_project(0)
    (root / name).write_text(text)
    with open(root / "pyproject.toml", "a") as f:
        f.write(f'editable = ["train.py", "{name}"]\n')
    for i in range(N):
        key, value = [("model.temperature", f"{0.1 + i * 0.001:.3f}"), ("model.layers.1", str(33 + i)),
                      ("model.act", f'"act{i}"'), ("data.batch", str(i + 1))][i % 4]
        (root / "experiments" / f"k{i:04d}.toml").write_text(
            f'description = "key {i}"\nhypothesis = "benchmark"\n[keys]\n"{key}" = {value}\n')
    for args in (["add", "-A"], ["-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "keys"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def measure(fmt: str) -> dict[str, float]:
    """Collection as bench_collect times it, then with the listing, then the patches alone."""
    root = keys_project(fmt) if fmt in CONFIGS else scratch_project(N)
    try:
        os.chdir(root)
        from autoresearch.collect import collect, editable_texts
        from autoresearch.listing import show_collection
        from autoresearch.patches import apply_patch

        config = in_process_config(root, "run", "--collect-only")
        pm = config.pluginmanager
        best = {"collect": float("inf"), "listed": float("inf"), "patches": float("inf")}
        for _ in range(3):
            start = time.perf_counter()
            items, errors = collect(config, [root / "experiments"], pm.hook, warn=False)
            collected = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as listing:
                show_collection(config, items)
            listed = time.perf_counter()
            texts = editable_texts(config)
            for h in items:
                apply_patch(h, texts, config.editable, config.protected)
            end = time.perf_counter()
            for what, took in (("collect", collected - start), ("listed", listed - start), ("patches", end - listed)):
                best[what] = min(best[what], took)
        assert len(items) == N and not errors, errors[:3]
        if fmt in CONFIGS:
            assert "model.temperature 0.7 → 0.1  (+1 -1 lines)" in listing.getvalue(), listing.getvalue()[:300]
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--collect-only"], cwd=root,
                           capture_output=True, text=True)
        command = time.perf_counter() - start
        assert r.returncode == 0, r.stderr
        print(f"{fmt:>4}: {N} hypotheses collected in {best['collect']:.3f}s, with the --collect-only listing "
              f"{best['listed']:.3f}s, their patches alone {best['patches'] * 1e3:.0f} ms (in-process, best of 3); "
              f"`autoresearch run --collect-only` whole command {command:.2f}s")
        return {f"{fmt}_collect_s": best["collect"], f"{fmt}_listed_s": best["listed"],
                f"{fmt}_patches_s": best["patches"], f"{fmt}_command_s": command}
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)


def main() -> dict[str, float]:
    """[keys] in each format, then [set] on train.py as a reference taken under the same load."""
    print(f"keys: --collect-only on {N} [keys] hypotheses (target <= 0.5 s in-process); set: the same for [set]")
    out: dict[str, float] = {}
    for fmt in (*CONFIGS, "set"):
        out.update(measure(fmt))
    return out


if __name__ == "__main__":
    main()
