"""Helpers for the benchmarks: a scratch git project with the fast fake workload."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import FAKE_TRAIN  # noqa: E402  (the tests' fake workload: prints its summary at once)


def scratch_project(hypotheses: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="autoresearch-bench-"))
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    (root / "pyproject.toml").write_text(f'[tool.autoresearch]\ncommand = ["{sys.executable}", "train.py"]\n'
                                         "lessons_every = 1000000\n")
    exp = root / "experiments"
    exp.mkdir()
    for i in range(hypotheses):
        (exp / f"h{i:04d}.toml").write_text(
            f'description = "hypothesis {i}"\nhypothesis = "benchmark"\n'
            f"[set]\nLR = {0.001 + i * 0.0001:.4f}\n[expect]\nval_bpb = \"< baseline\"\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


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
