"""require_device: never train on the CPU by mistake (plugins/device.py)."""
from __future__ import annotations

import json

from autoresearch import loop
from autoresearch.plugins.results_tsv import read_results
from conftest import git, run_subprocess, simple


def test_require_cuda_without_a_gpu_is_one_line_before_anything_is_written(repo, cli, monkeypatch):
    monkeypatch.setattr(loop, "gpus", lambda: ())  # as on a machine where nvidia-smi lists nothing
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "t1", "--require-device", "cuda")
    assert r.rc == 4 and r.err.count("\n") == 1, r
    assert 'require_device = "cuda" but this machine has no GPU' in r.err
    assert not (repo / ".autoresearch").exists() and "autoresearch/t1" not in git(repo, "branch", "--list")


def test_a_run_that_trained_on_the_cpu_is_a_crash_naming_the_device(repo, cli, monkeypatch):
    monkeypatch.setattr(loop, "gpus", lambda: ("0",))  # a GPU is there, but the workload falls back to the CPU
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        'print(f"depth:            {DEPTH}")', 'print(f"depth:            {DEPTH}")\nprint(f"device:           {DEV}")')
        .replace('LR = 0.01\n', 'LR = 0.01\nDEV = "cuda"\n'))
    git(repo, "commit", "-qam", "prints its device")
    simple(repo, "cpu", 'DEV = "cpu"')
    simple(repo, "gpu", 'DEV = "cuda:0"\nLR = 0.02')
    r = cli("run", "--tag", "t1", "--require-device", "cuda")
    assert r.rc == 0, r
    assert [x["status"] for x in read_results(repo / "results.tsv")] == ["keep", "crash", "keep"]
    entries = [json.loads(x) for x in (repo / ".autoresearch/runs/t1/results.jsonl").read_text().splitlines()]
    assert entries[1]["cause"] == "device" and "trained on cpu, not on the required cuda" in entries[1]["root_cause"]


def test_without_require_device_any_device_is_fine(repo):
    simple(repo, "a", "LR = 0.02")
    assert run_subprocess(repo, "run", "--tag", "t1").returncode == 0
