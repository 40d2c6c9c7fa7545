"""The GitHub workflows and the composite action: valid against GitHub's schemas
(check-jsonschema), clean under zizmor's offline audits, every action pinned by commit SHA,
permissions declared."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = ROOT / "action.yml"


def zizmor() -> str:
    """The zizmor binary of the dev extra: beside this Python, where its wheel put it, or on PATH."""
    beside = Path(sys.executable).with_name("zizmor")
    if beside.is_file():
        return str(beside)
    try:
        found = [distribution("zizmor").locate_file(f) for f in distribution("zizmor").files or ()
                 if f.name == "zizmor" and "bin" in f.parts]
    except PackageNotFoundError:
        found = []
    path = next((str(p) for p in found if Path(p).is_file()), None) or shutil.which("zizmor")
    if not path:
        pytest.fail("zizmor is not installed: pip install -e '.[dev]'")
    return path


def test_workflows_and_action_match_githubs_schemas() -> None:
    assert WORKFLOWS and ACTION.is_file()
    for schema, files in (("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", [ACTION])):
        proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                               *map(str, files)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    proc = subprocess.run([zizmor(), "--offline", "--no-progress", *map(str, WORKFLOWS), str(ACTION)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


def test_every_action_is_pinned_and_every_workflow_declares_its_permissions() -> None:
    for path in [*WORKFLOWS, ACTION]:
        text = path.read_text()
        for ref in re.findall(r"^\s*-?\s*uses:\s*(\S+)", text, re.MULTILINE):
            assert ref == "./" or re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned"
        if path != ACTION:
            assert re.search(r"^permissions:", text, re.MULTILINE), f"{path.name} declares no permissions"


def test_the_gpu_job_is_a_few_lines_around_autoresearch_ci() -> None:
    gpu, action = (ROOT / ".github" / "workflows" / "gpu.yml").read_text(), ACTION.read_text()
    assert "fetch-depth: 0" in gpu and "uses: ./" in gpu
    assert "contents: write" in gpu and "pull-requests: write" in gpu and "checks: write" not in gpu
    assert "autoresearch ci " in action and ".[dev]" not in action + gpu
    assert "autoresearch-ci/record.tar.gz" in action and "autoresearch-ci/junit.xml" in action
