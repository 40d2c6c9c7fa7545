"""train.py's CUDA path, run on a machine without a GPU: the device's facts are made up (a CUDA
device named H100 or H200, with or without bf16), so the code that differs on CUDA (the scaled
sizes, the autocast dtype, the TF32 flags, the wait before a timed step, the peak memory, MFU)
runs here and a typo in it fails the suite."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Iterator

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SETUP = "# Setup\n"  # train.py's section after the device's: the model is built there


def head_of_train(monkeypatch: pytest.MonkeyPatch, name: str, bf16: bool = True) -> dict:
    """train.py up to its Setup section (the constants, the device, the model's classes), run with
    torch.cuda faked to say that a GPU called `name` is there."""
    source = (ROOT / "train.py").read_text()
    assert SETUP in source, "train.py has no '# Setup' section: update this test with the script"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.syspath_prepend(str(ROOT))  # import prepare
    monkeypatch.delenv("AUTORESEARCH_THREADS", raising=False)
    namespace: dict = {"__name__": "train_head"}
    code = compile(source[:source.index(SETUP)], str(ROOT / "train.py"), "exec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some torch builds warn of autocast("cuda") without CUDA
        exec(code, namespace)
    return namespace


@pytest.fixture(autouse=True)
def tf32_as_it_was() -> Iterator[None]:
    """train.py sets the TF32 flags on CUDA: off before each test, and as they were after it."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12),
                                        ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA GeForce RTX 4090", 0.0)])
def test_the_cuda_path_with_a_made_up_gpu(monkeypatch: pytest.MonkeyPatch, name: str, peak: float) -> None:
    ns = head_of_train(monkeypatch, name)
    assert ns["device"].type == "cuda" and ns["CUDA"] is True
    assert (ns["depth"], ns["width"], ns["batch_size"]) == (4 * 2, 128 * 4, 32 * 8)  # the CUDA_*_SCALE factors
    assert ns["autocast"].device == "cuda" and ns["autocast"].fast_dtype == torch.bfloat16
    assert torch.backends.cuda.matmul.allow_tf32 is True and torch.backends.cudnn.allow_tf32 is True
    assert ns["plan"]["compile"] and ns["plan"]["fused"] and ns["plan"]["peak_flops"] == peak
    assert ns["sync"] is torch.cuda.synchronize
    assert ns["peak_memory_mb"](True, lambda: 3 * 2**30) == 3072.0  # what torch allocated, at its peak
    # MFU: 1e9 FLOPs a token, 1e6 tokens in 10 s on the device's peak; nothing known, nothing claimed
    assert ns["mfu_percent"](1e9, 1e6, 10.0, ns["plan"]["peak_flops"]) == pytest.approx(1e16 / peak if peak else 0.0)
    model = ns["GPT"](ns["depth"], ns["width"], ns["N_HEAD"])  # the CUDA-sized model builds (on the CPU)
    assert sum(p.numel() for p in model.parameters()) > 20e6


def test_a_gpu_without_bf16_trains_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = head_of_train(monkeypatch, "Tesla T4", bf16=False)
    assert ns["plan"]["autocast_dtype"] is None and ns["autocast"].device == "cpu"
    assert torch.backends.cuda.matmul.allow_tf32 is True and ns["plan"]["peak_flops"] == 0.0


def test_the_cpu_path_is_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    source = (ROOT / "train.py").read_text()
    monkeypatch.syspath_prepend(str(ROOT))
    ns: dict = {"__name__": "train_head"}
    exec(compile(source[:source.index(SETUP)], "train.py", "exec"), ns)
    assert ns["device"].type == "cpu" and (ns["depth"], ns["width"], ns["batch_size"]) == (4, 128, 32)
    assert ns["autocast"].device == "cpu" and not ns["plan"]["compile"] and not ns["plan"]["fused"]
    assert torch.backends.cuda.matmul.allow_tf32 is False  # untouched
    assert ns["mfu_percent"](1e9, 1e6, 10.0, ns["plan"]["peak_flops"]) == 0.0
    rss = ns["peak_memory_mb"](False)
    assert 10 < rss < 1e6 and ns["sync"]() is None
    assert sys.platform != "darwin" or rss > 0
