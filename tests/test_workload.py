"""The reference workload: prepare.py's corpus and evaluation, train.py end to end on the CPU.

The corpus here is a small generated folder (``--source``), so each training run takes seconds.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
import prepare  # noqa: E402

SUMMARY_KEYS = ["val_bpb", "training_seconds", "total_seconds", "startup_seconds", "peak_vram_mb",
                "mfu_percent", "total_tokens_M", "num_steps", "num_params_M", "depth"]


def make_corpus(folder: Path, files: int = 30, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words = ["def", "return", "self", "import", "class", "for", "in", "if", "else", "value", "x", "(", ")", ":"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(120)]
        (folder / f"f{i:02d}.py").write_text("\n".join(lines) + "\n")
    return folder


def run_prepare(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "prepare.py"), *args], capture_output=True, text=True,
                          env={**os.environ, "AUTORESEARCH_CACHE": str(cache)})


def manifest(cache: Path) -> dict:
    return json.loads((cache / "data" / "manifest.json").read_text())


def test_prepare_is_idempotent_and_says_so(tmp_path):
    src = make_corpus(tmp_path / "src")
    first = run_prepare(tmp_path / "cache", "--source", str(src))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("built ")
    stamp = (tmp_path / "cache" / "data" / "train.bin").stat().st_mtime_ns
    second = run_prepare(tmp_path / "cache", "--source", str(src))
    assert second.stdout.startswith("up to date, nothing to do: ")
    assert (tmp_path / "cache" / "data" / "train.bin").stat().st_mtime_ns == stamp


def test_fingerprint_changes_with_the_content_only(tmp_path):
    src = make_corpus(tmp_path / "src")
    cache = tmp_path / "cache"
    run_prepare(cache, "--source", str(src))
    sha = manifest(cache)["sha256"]
    (src / "f03.py").touch()  # same bytes, new time: rebuilt, same fingerprint
    time.sleep(0.01)
    os.utime(src / "f03.py")
    assert run_prepare(cache, "--source", str(src)).stdout.startswith("built ")
    assert manifest(cache)["sha256"] == sha
    (src / "f03.py").write_text("changed\n")
    run_prepare(cache, "--source", str(src))
    assert manifest(cache)["sha256"] != sha


def test_source_folder_and_split_never_overlaps(tmp_path):
    src = make_corpus(tmp_path / "src", files=20)
    cache = tmp_path / "cache"
    assert run_prepare(cache, "--source", str(src)).returncode == 0
    m = manifest(cache)
    assert m["sources"] == [str(src.resolve())]
    assert not set(m["train_files"]) & set(m["val_files"])
    assert len(m["val_files"]) == 2 and len(m["train_files"]) == 18
    train = (cache / "data" / "train.bin").read_bytes()
    val = (cache / "data" / "val.bin").read_bytes()
    assert val == b"".join(Path(f).read_bytes() + b"\n" for f in m["val_files"])
    assert train == b"".join(Path(f).read_bytes() + b"\n" for f in m["train_files"])


def test_bad_sources_are_one_line_errors(tmp_path):
    r = run_prepare(tmp_path / "cache", "--source", str(tmp_path / "missing"))
    assert r.returncode == 1 and r.stderr.strip().startswith("error: source") and "Traceback" not in r.stderr
    small = make_corpus(tmp_path / "small", files=3)
    r = run_prepare(tmp_path / "cache", "--source", str(small))
    assert r.returncode == 1 and "give at least 10 files" in r.stderr


def test_default_source_is_the_standard_library_in_a_fixed_order():
    files = prepare.list_files(prepare.default_sources())
    root = prepare.default_sources()[0]
    rel = [f.relative_to(root).as_posix() for f in files]
    assert rel == sorted(rel) and len(rel) > 500
    assert not any("site-packages" in r for r in rel)


def test_evaluate_bpb_uniform_logits_is_exactly_8_bits():
    import torch

    class Uniform(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(*x.shape, prepare.VOCAB_SIZE)

    val = torch.randint(0, 256, (prepare.SEQ_LEN * 7 + 1,), dtype=torch.uint8)
    bpb = prepare.evaluate_bpb(Uniform(), val, torch.device("cpu"), batch_size=3)
    assert bpb == pytest.approx(8.0, abs=1e-6)  # float32 log-softmax, float64 sum


# -------------------------------------------------------------------------------------------
# train.py end to end


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    src = make_corpus(tmp_path_factory.mktemp("src"), files=40)
    assert run_prepare(cache, "--source", str(src)).returncode == 0
    return cache


def train(cache: Path, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AUTORESEARCH_CACHE": str(cache), **env})


def summary(stdout: str) -> dict[str, float]:
    block = stdout.split("\n---\n", 1)[1].strip().splitlines()
    parsed = {}
    for line in block:
        if line.startswith("device:"):  # the device it trained on: a word, not a number
            assert re.fullmatch(r"device:\s+(cpu|cuda|mps)", line), line
            continue
        m = re.fullmatch(r"(\w+):\s+(-?\d+(?:\.\d+)?)", line)
        assert m, f"summary line does not parse: {line!r}"
        parsed[m.group(1)] = float(m.group(2))
    return parsed


def test_train_runs_to_a_summary_block(small_cache):
    r = train(small_cache, AUTORESEARCH_TIME_BUDGET="3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^step 00001 \(\d+\.\d%\) \| loss \d+\.\d{6} \| .* \| remaining \d+s$", r.stdout, re.M)
    s = summary(r.stdout)
    assert list(s) == SUMMARY_KEYS
    assert 0 < s["val_bpb"] < 8.5 and s["num_steps"] >= 4 and s["depth"] == 4 and s["peak_vram_mb"] > 0
    # the budget is honoured: training stops at the first step that reaches it, so it runs past it by
    # less than that step. The step's time is the run's own (its printed dt, or twice the mean of the
    # timed steps), never under 3 s: on a loaded machine one step can take many seconds
    timed = s["num_steps"] - 3  # train.py's UNTIMED_STEPS
    last = re.search(rf"^step {int(s['num_steps']):05d} .* \| dt (\d+)ms \|", r.stdout, re.M)
    step = int(last.group(1)) / 1000 if last else 2 * s["training_seconds"] / timed
    assert 3.0 <= s["training_seconds"] < 3.0 + max(step, 3.0) + 0.05, r.stdout


def test_step_budget_is_exactly_reproducible(small_cache):
    a = train(small_cache, AUTORESEARCH_MAX_STEPS="6")
    b = train(small_cache, AUTORESEARCH_MAX_STEPS="6")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert summary(a.stdout)["num_steps"] == 6
    assert summary(a.stdout)["val_bpb"] == summary(b.stdout)["val_bpb"]


def test_nan_loss_prints_fail_and_exits_1(small_cache, tmp_path):
    shutil.copy(ROOT / "prepare.py", tmp_path)
    source = (ROOT / "train.py").read_text()
    line = "    loss = loss_fn(train_model, x, y)\n"
    assert source.count(line) == 1
    (tmp_path / "train.py").write_text(source.replace(line, line.rstrip() + " * float('nan')\n"))
    r = train(small_cache, cwd=tmp_path, AUTORESEARCH_MAX_STEPS="50")
    assert r.returncode == 1
    assert r.stdout.strip().splitlines()[-1] == "FAIL"
    assert "---" not in r.stdout


def test_missing_cache_is_one_line(tmp_path):
    r = train(tmp_path / "empty")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: no prepared data in {tmp_path / 'empty' / 'data'}; run `python prepare.py` first"
