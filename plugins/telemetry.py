"""telemetry: how busy the GPU was while each run trained, and how much of its memory it used.

While a run of the workload trains, a thread samples each of its GPUs every ``telemetry_interval``
seconds (the first sample as it starts): utilisation and memory in use, through NVML (the
``pynvml`` module of ``nvidia-ml-py``, the ``gpu`` extra) when it loads, else through
``nvidia-smi --query-gpu`` when it is on PATH, else not at all (a CPU machine: nothing is added).
The run's GPUs are its worker's device (``devices``), else those ``CUDA_VISIBLE_DEVICES`` names,
else every GPU; with ``executor = "ray"`` nothing is sampled (the task may train elsewhere).

What it found is two metrics of the run, ``gpu_util_percent`` (the mean over its samples and
GPUs) and ``gpu_memory_peak_mb`` (the most any of its GPUs had in use: the whole device's, other
processes' included), and with several GPUs the same per GPU (``gpu1_util_percent``, …). As
metrics they reach the ledger, results.jsonl, ``report`` and MLflow; results.tsv keeps its
columns. ``report`` lists the runs below ``gpu_util_floor``: a GPU that waited (on the input
pipeline, a CPU-bound step, a tiny batch).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from typing import Any

from autoresearch import hookimpl

UTIL, MEMORY = "gpu_util_percent", "gpu_memory_peak_mb"


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("telemetry_interval", type="float", default=1.0, range=(0.01, 3600.0),
                      help="seconds between two samples of the GPUs' utilisation and memory while a run trains "
                           "(NVML, else nvidia-smi; nothing on a machine without either)")
    parser.addsetting("gpu_util_floor", type="float", default=30.0, range=(0.0, 100.0),
                      help="report lists the runs whose mean GPU utilisation (gpu_util_percent) was below this "
                           "many percent: the GPU waited (an input pipeline problem?)")


class Nvml:
    """NVML through pynvml: one init for the session."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        nvml.nvmlInit()
        self.count = nvml.nvmlDeviceGetCount()

    def read(self, indices: list[int] | None) -> dict[int, tuple[float, float]]:
        out = {}
        for i in indices if indices is not None else range(self.count):
            handle = self.nvml.nvmlDeviceGetHandleByIndex(i)
            util = self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            out[i] = (float(util), self.nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)
        return out

    def close(self) -> None:
        self.nvml.nvmlShutdown()


class Smi:
    """nvidia-smi, one short process a sample."""

    QUERY = ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]

    def __init__(self, path: str) -> None:
        self.path = path
        self.read(None)  # it answers, or this is no source

    def read(self, indices: list[int] | None) -> dict[int, tuple[float, float]]:
        text = subprocess.run([self.path, *self.QUERY], capture_output=True, text=True, timeout=10, check=True).stdout
        return parse_smi(text, indices)

    def close(self) -> None:
        pass


def parse_smi(text: str, indices: list[int] | None = None) -> dict[int, tuple[float, float]]:
    """``index, utilization.gpu, memory.used`` lines (CSV, no header, no units) -> {index: (percent,
    MiB)}; a line that is not three finite numbers (``[N/A]`` on a GPU that does not say) is skipped."""
    import math

    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        try:
            index, util, memory = int(cells[0]), float(cells[1]), float(cells[2])
        except (ValueError, IndexError):
            continue
        if len(cells) == 3 and math.isfinite(util) and math.isfinite(memory) and (indices is None or index in indices):
            out[index] = (util, memory)
    return out


def open_source() -> Nvml | Smi | None:
    """NVML, else nvidia-smi, else None."""
    try:
        import pynvml

        return Nvml(pynvml)
    except Exception:  # no module, no driver, no GPU: NVML raises its own error types
        pass
    path = shutil.which("nvidia-smi")
    if path:
        try:
            return Smi(path)
        except (OSError, subprocess.SubprocessError):
            pass
    return None


class Sampler:
    """Samples the GPUs on a thread, from start() to stop()."""

    def __init__(self, source: Nvml | Smi, indices: list[int] | None, interval: float) -> None:
        self.source, self.indices, self.interval = source, indices, interval
        self.util: dict[int, list[float]] = {}
        self.peak: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="autoresearch-telemetry", daemon=True)

    def loop(self) -> None:
        while True:
            try:
                for i, (util, memory) in self.source.read(self.indices).items():
                    self.util.setdefault(i, []).append(util)
                    self.peak[i] = max(self.peak.get(i, 0.0), memory)
            except Exception:  # a sample that fails (a GPU fell off the bus, a hung nvidia-smi) is skipped
                pass
            if self.done.wait(self.interval):
                return

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join(15)
        samples = [u for values in self.util.values() for u in values]
        if not samples:
            return {}
        metrics = {UTIL: round(sum(samples) / len(samples), 2), MEMORY: round(max(self.peak.values()), 1)}
        if len(self.util) > 1:
            for i, values in sorted(self.util.items()):
                metrics[f"gpu{i}_util_percent"] = round(sum(values) / len(values), 2)
                metrics[f"gpu{i}_memory_peak_mb"] = round(self.peak[i], 1)
        return metrics


def run_devices(experiment: Any) -> list[int] | None:
    """The GPUs a run uses, by index: its worker's device, else CUDA_VISIBLE_DEVICES, else all (None)."""
    session = experiment.session
    names = session.devices[getattr(experiment, "worker", 0) % len(session.devices)] if getattr(session, "devices", None) else \
        os.environ.get("CUDA_VISIBLE_DEVICES")
    if names is None:
        return None
    try:
        return [int(n) for n in str(names).split(",") if n.strip()]
    except ValueError:  # GPU UUIDs: sample every GPU
        return None


class Telemetry:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.source: Nvml | Smi | None = None
        self.opened = False
        self.found: dict[str, dict[str, float]] = {}  # a run's log path -> what its GPUs did
        self.lock = threading.Lock()

    def get_source(self) -> Nvml | Smi | None:
        with self.lock:
            if not self.opened:
                self.source, self.opened = open_source(), True
            return self.source

    @hookimpl(wrapper=True)
    def autoresearch_experiment_run(self, experiment):
        # a Ray task may train on another machine: this one's GPUs would say nothing about it
        source = self.get_source() if self.config.get("executor", "local") == "local" else None
        sampler = Sampler(source, run_devices(experiment), self.config.get("telemetry_interval")).start() \
            if source is not None else None
        try:
            result = yield
        finally:
            metrics = sampler.stop() if sampler is not None else {}
        if metrics and result is not None and result.log_path:
            with self.lock:
                self.found[str(result.log_path)] = metrics
        return result

    @hookimpl
    def autoresearch_parse_metrics(self, experiment, log_path) -> dict[str, float] | None:
        with self.lock:
            return self.found.pop(str(log_path), None)

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                pass
            self.source, self.opened = None, False


@hookimpl
def autoresearch_report_extra(config) -> str | None:
    """The runs whose GPU waited: mean utilisation below gpu_util_floor."""
    from autoresearch.commands.report import md
    from autoresearch.commands.status import load_reports

    floor = config.get("gpu_util_floor")
    _, done = load_reports(config)
    idle = [r for r in done if r.metrics.get(UTIL) is not None and r.metrics[UTIL] < floor]
    if not idle:
        return None
    lines = [f"## GPU idle\n\nMean GPU utilisation below gpu_util_floor = {floor:g} %: the GPU waited (on the "
             "input pipeline, a CPU-bound step, a small batch?), so these runs measured less than the hardware "
             "allows.\n", f"| # | experiment | {UTIL} | {MEMORY} |", "|---|---|---|---|"]
    for r in idle:
        peak = r.metrics.get(MEMORY)
        lines.append(f"| {r.seq} | {md(r.name)} | {r.metrics[UTIL]:.1f} | {'—' if peak is None else f'{peak:.0f}'} |")
    return "\n".join(lines)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(Telemetry(config), "telemetry-sampler")
