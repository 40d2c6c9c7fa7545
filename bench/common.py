"""Helpers for the benchmarks: a scratch git project with the fast fake workload."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import FAKE_TRAIN  # noqa: E402  (the tests' fake workload: prints its summary at once)


def write_project(root: Path, train: str, hypotheses: dict[str, str]) -> Path:
    """A committed git project in `root` (made if missing): `train` as train.py, the runner's
    settings (the command, no lessons) and experiments/<name>.toml with each hypothesis's text."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         "lessons_every = 1000000\n")
    exp = root / "experiments"
    exp.mkdir()
    for name, text in hypotheses.items():
        (exp / f"{name}.toml").write_text(text)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def lr_hypotheses(lrs: list[float]) -> dict[str, str]:
    """One hypothesis per learning rate, h00, h01, ...: each sets LR (the workloads' baseline is 0.01)."""
    return {f"h{i:02d}": f'description = "LR {lr:.4f}"\nhypothesis = "bench"\n[set]\nLR = {lr}\n'
            for i, lr in enumerate(lrs)}


def scratch_project(hypotheses: int) -> Path:
    return write_project(Path(tempfile.mkdtemp(prefix="autoresearch-bench-")), FAKE_TRAIN, {
        f"h{i:04d}": f'description = "hypothesis {i}"\nhypothesis = "benchmark"\n'
                     f"[set]\nLR = {0.001 + i * 0.0001:.4f}\n[expect]\nval_bpb = \"< baseline\"\n"
        for i in range(hypotheses)})


def in_process_config(root: Path, *argv: str):
    """The configuration a command line makes in `root`, built in this process as the CLI builds
    it (plugins, settings, options): for timing a command's own work without its start-up."""
    from autoresearch import pluginmanager
    from autoresearch.cli import make_parser
    from autoresearch.config import Config, Parser

    pm = pluginmanager.build(root, [])
    parser = Parser()
    pm.hook.autoresearch_addoption.call_historic(kwargs=dict(parser=parser))
    top, _ = make_parser(parser)
    return Config(root, pm, parser, top.parse_args(list(argv)))
