"""The commands as a package: one module per command, status rendered from its data, and a core
that never reaches into a plugin's internals."""
from __future__ import annotations

import ast
import json
from pathlib import Path

from autoresearch import commands
from autoresearch.cli import COMMANDS
from autoresearch.commands import status as status_command
from conftest import simple

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_is_a_module_with_main():
    assert set(commands.MODULES) == set(COMMANDS)
    for name in COMMANDS:
        assert callable(commands.module(name).main), name
    assert not (ROOT / "autoresearch" / "commands.py").exists()


def test_no_core_module_imports_a_plugin():
    for path in sorted((ROOT / "autoresearch").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module == "autoresearch":
                names = [f"autoresearch.{a.name}" for a in node.names]
            assert not any(n == "autoresearch.plugins" or n.startswith("autoresearch.plugins.") for n in names), \
                f"{path.relative_to(ROOT)}:{node.lineno} imports a plugin"


def test_status_text_is_rendered_from_status_data_only(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    text, data = cli("status").out, json.loads(cli("status", "--json").out)
    assert data["experiments"][1]["description"] == "a" and "  #1   keep" in text
    real = status_command.status_data
    calls = []

    def data_of(config):
        calls.append(1)
        data = real(config)
        data["experiments"][1]["description"] = "rendered from the data"
        return data

    monkeypatch.setattr(status_command, "status_data", data_of)
    out = cli("status").out
    assert calls == [1] and "rendered from the data" in out
    assert out.replace("rendered from the data", "a") == text
