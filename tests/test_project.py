"""The project's front door: the README's commands, CI, packaging, and the runner staying light."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_gives_exactly_two_commands_and_ci_runs_the_test_one():
    setup_and_run, tests = readme_commands()
    assert "prepare.py" in setup_and_run and "autoresearch run experiments/" in setup_and_run
    assert tests.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests


def test_runner_never_imports_torch():
    code = ("import sys; from autoresearch.cli import main; import autoresearch.plugins.git, "
            "autoresearch.plugins.terminal, autoresearch.commands, autoresearch.session; "
            "rc = main(['--help']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_builtin_plugins_install_as_autoresearch_plugins_not_a_top_level_package():
    import autoresearch.plugins.verdict as verdict

    assert verdict.__name__ == "autoresearch.plugins.verdict"
    assert verdict.__file__.endswith("plugins/verdict.py")
    text = (ROOT / "pyproject.toml").read_text()
    assert '"autoresearch.plugins" = "plugins"' in text


def test_examples_collect_cleanly():
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--collect-only", "experiments/"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    assert len(ids) >= 5
    assert any(i.endswith(".py::silu") for i in ids)  # Python format
    assert any("[" in i for i in ids)  # a sweep
    kinds = r.stdout
    assert "replace 1 text" in kinds and "diff" in kinds and "→" in kinds  # every patch kind
    assert "val_bpb < baseline - 0.001; peak_vram_mb <= baseline * 1.05" in kinds  # multi-metric


def test_every_test_the_docs_guarantee_exists():
    import ast

    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    guarantees = (ROOT / "docs" / "guarantees.md").read_text()
    assert "test_soak.py::test_random_stops_then_resume_keep_every_promise" in guarantees
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)", text))
    assert len(named) >= 20
    for module, name in named:
        tree = ast.parse((ROOT / "tests" / module).read_text())
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, (module, name)


def test_the_example_conftest_adds_tokens_per_second(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("example_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = tmp_path / "run.log"
    log.write_text("step 00001 | loss 2.0\n" * 5000 + "---\nval_bpb:          2.459734\n"
                   "training_seconds: 60.2\ntotal_tokens_M:   1.0\n")
    assert module.autoresearch_parse_metrics(None, log) == {"tokens_per_second": 16611.3}
    log.write_text("crashed\n")
    assert module.autoresearch_parse_metrics(None, log) is None
