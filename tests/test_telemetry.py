"""telemetry: GPU utilisation and memory sampled while each run trains, against a fake NVML (a
``pynvml`` module on the runner's path) and a fake ``nvidia-smi`` on PATH; nothing without either."""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_subprocess, simple

FAKE_PYNVML = '''
"""A fake NVML: two GPUs; utilisation from $FAKE_NVML_UTIL ("10,70"), memory in MiB from $FAKE_NVML_MB."""
import os

class NVMLError(Exception):
    pass

def _values(name, default):
    return [float(v) for v in os.environ.get(name, default).split(",")]

def nvmlInit():
    if os.environ.get("FAKE_NVML_FAIL"):
        raise NVMLError("NVML Shared Library Not Found")
    with open(os.environ["FAKE_NVML_LOG"], "a") as f:
        f.write("init\\n")

def nvmlShutdown():
    with open(os.environ["FAKE_NVML_LOG"], "a") as f:
        f.write("shutdown\\n")

def nvmlDeviceGetCount():
    return 2

def nvmlDeviceGetHandleByIndex(i):
    return i

class _Util:
    def __init__(self, gpu):
        self.gpu, self.memory = gpu, 0

class _Mem:
    def __init__(self, used):
        self.used, self.total, self.free = used, 80 * 2**30, 80 * 2**30 - used

def nvmlDeviceGetUtilizationRates(handle):
    return _Util(_values("FAKE_NVML_UTIL", "10,70")[handle])

def nvmlDeviceGetMemoryInfo(handle):
    return _Mem(int(_values("FAKE_NVML_MB", "2048,4096")[handle] * 2**20))
'''

FAKE_SMI = '''#!/bin/sh
case "$*" in
  *--query-gpu=index,utilization.gpu,memory.used*) printf '0, 55, 1000\\n1, [N/A], [N/A]\\n' ;;
  *-L*) echo "GPU 0: Fake GPU (UUID: GPU-0)" ;;
  *) exit 2 ;;
esac
'''


def fakes(tmp_path: Path, nvml: bool = True, smi: bool = False) -> dict[str, str]:
    mods, bin_dir = tmp_path / "mods", tmp_path / "bin"
    mods.mkdir(exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    (mods / "pynvml.py").write_text(FAKE_PYNVML)
    if smi:
        (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
        (bin_dir / "nvidia-smi").chmod(0o755)
    path = os.pathsep.join(dict.fromkeys([str(bin_dir), os.path.dirname(shutil.which("git") or "/usr/bin/git"),
                                          os.path.dirname(sys.executable), "/usr/bin", "/bin"]))
    return dict(PYTHONPATH=str(mods), PATH=path, FAKE_NVML_LOG=str(tmp_path / "nvml.log"),
                **({} if nvml else {"FAKE_NVML_FAIL": "1"}))


def floor(repo: Path, percent: float) -> None:
    """gpu_util_floor in pyproject.toml: report reads it."""
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + f"gpu_util_floor = {percent}\n")


def jsonl(repo: Path, tag: str) -> list[dict]:
    return [json.loads(line) for line in (repo / ".autoresearch" / "runs" / tag / "results.jsonl").read_text().splitlines()]


def test_nvml_metrics_reach_the_record_and_the_report(repo: Path, tmp_path: Path) -> None:
    simple(repo, "lr_up", "LR = 0.03")
    env = fakes(tmp_path)
    proc = run_subprocess(repo, "run", "--tag", "t", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = jsonl(repo, "t")
    for row in rows:  # two GPUs: the mean over both, the peak of either, and each GPU's own
        assert row["metrics"]["gpu_util_percent"] == 40.0
        assert row["metrics"]["gpu_memory_peak_mb"] == 4096.0
        assert (row["metrics"]["gpu0_util_percent"], row["metrics"]["gpu1_memory_peak_mb"]) == (10.0, 4096.0)
    ledger = (repo / ".autoresearch" / "runs" / "t" / "ledger.jsonl").read_text()
    assert '"gpu_util_percent": 40.0' in ledger
    assert (repo / "results.tsv").read_text().splitlines()[0].split("\t") == \
        ["commit", "val_bpb", "memory_gb", "status", "description"]  # its columns are the seed's
    assert (tmp_path / "nvml.log").read_text().splitlines() == ["init", "shutdown"]  # once a session
    report = run_subprocess(repo, "report", "--tag", "t", env=env).stdout
    assert "## GPU idle" not in report  # 40 % is above the default floor, 30 %
    floor(repo, 50)
    report = run_subprocess(repo, "report", "--tag", "t", env=env)
    assert "| 0 | baseline | 40.0 | 4096 |" in report.stdout and "| 1 | lr_up | 40.0 | 4096 |" in report.stdout, report


def test_the_workers_device_only(repo: Path, tmp_path: Path) -> None:
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + 'devices = ["1"]\n')
    from conftest import git

    git(repo, "commit", "-qam", "one GPU")
    simple(repo, "lr_up", "LR = 0.03")
    proc = run_subprocess(repo, "run", "--tag", "t", env=fakes(tmp_path))
    assert proc.returncode == 0, proc.stderr
    metrics = jsonl(repo, "t")[0]["metrics"]
    assert (metrics["gpu_util_percent"], metrics["gpu_memory_peak_mb"]) == (70.0, 4096.0)
    assert "gpu0_util_percent" not in metrics and "gpu1_util_percent" not in metrics


def test_nvidia_smi_when_nvml_does_not_load(repo: Path, tmp_path: Path) -> None:
    simple(repo, "lr_up", "LR = 0.03")
    proc = run_subprocess(repo, "run", "--tag", "t", env=fakes(tmp_path, nvml=False, smi=True))
    assert proc.returncode == 0, proc.stderr
    metrics = jsonl(repo, "t")[0]["metrics"]
    assert (metrics["gpu_util_percent"], metrics["gpu_memory_peak_mb"]) == (55.0, 1000.0)  # GPU 1 said N/A
    floor(repo, 60)
    report = run_subprocess(repo, "report", "--tag", "t").stdout
    assert "## GPU idle" in report and "| 0 | baseline | 55.0 | 1000 |" in report


def test_nothing_without_nvml_or_nvidia_smi(repo: Path, tmp_path: Path) -> None:
    simple(repo, "lr_up", "LR = 0.03")
    proc = run_subprocess(repo, "run", "--tag", "t", env=fakes(tmp_path, nvml=False))
    assert proc.returncode == 0, proc.stderr
    assert not any(k.startswith("gpu") for k in jsonl(repo, "t")[0]["metrics"])


def test_the_sampler_reads_every_interval() -> None:
    """Sampler alone: utilisation averaged over every sample, memory at its peak."""
    from autoresearch.plugins.telemetry import Sampler

    class Source:
        def __init__(self) -> None:
            self.n = 0

        def read(self, indices):
            self.n += 1
            if self.n == 2:
                raise RuntimeError("a sample that fails is skipped")
            return {0: (float(10 * self.n), 100.0 * (self.n % 3))}

    source = Source()
    sampler = Sampler(source, [0], 0.01).start()
    while source.n < 5:
        pass
    metrics = sampler.stop()
    n = source.n
    values = [10.0 * k for k in range(1, n + 1) if k != 2]
    assert metrics["gpu_util_percent"] == round(sum(values) / len(values), 2)
    assert metrics["gpu_memory_peak_mb"] == 200.0


def first_int(line: str) -> int | None:
    try:
        return int(line.split(",")[0])
    except ValueError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.tuples(st.integers(-3, 99), st.floats(allow_nan=True), st.floats(0, 1e6))
                          .map(lambda t: f"{t[0]}, {t[1]}, {t[2]}")), max_size=8))
def test_any_nvidia_smi_output_reads_as_numbers_or_nothing(lines) -> None:
    """Whatever nvidia-smi prints (a driver message, N/A, a partial line), parsing never fails,
    and what it returns is finite numbers from lines of exactly three."""
    from autoresearch.plugins.telemetry import parse_smi

    found = parse_smi("\n".join(lines))
    for index, (util, memory) in found.items():
        assert isinstance(index, int) and math.isfinite(util) and math.isfinite(memory)
        assert any(line.count(",") == 2 and first_int(line) == index for line in lines)
    assert parse_smi("0, 55, 1000\n1, [N/A], [N/A]\n2, 7, 8, 9\n", [0, 1]) == {0: (55.0, 1000.0)}


def test_the_telemetry_reaches_mlflow(repo: Path, tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from conftest import git

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + f'mlflow_tracking_uri = "{uri}"\n')
    git(repo, "commit", "-qam", "log to mlflow")
    simple(repo, "lr_up", "LR = 0.03")
    proc = run_subprocess(repo, "run", "--tag", "t", env=fakes(tmp_path))
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("autoresearch")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert runs["001-lr_up"].data.metrics["gpu_util_percent"] == 40.0
    assert runs["001-lr_up"].data.metrics["gpu_memory_peak_mb"] == 4096.0
