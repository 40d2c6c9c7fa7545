"""What a run cost: each run priced at the device it ran on, and the run's budget.

A run's device is what its summary's ``device:`` line named (``RunResult.device``: ``cuda``,
``cpu``, ``mps``); a run that printed none ran where the machine's compute is (a GPU when
nvidia-smi lists one or ``devices`` is set, else the CPU: :func:`compute_unit`).
A GPU run costs ``cost_per_hour`` per GPU-hour, times ``gpus``; a CPU run costs
``cost_per_hour_cpu`` per hour (never the GPU price). The seconds of a smoke run count too.
``cost_budget`` is the most the run may cost: the cost plugin stops the session once it is spent,
and with ``-n N`` holds back an experiment the budget could not pay for beside those in flight
(:func:`hold`).
"""
from __future__ import annotations

import functools
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

DEVICE_LINE = re.compile(r"^device:[ \t]+(\S+)", re.MULTILINE)
GPU, CPU = "GPU", "CPU"


def compute_unit(config) -> str:
    """"GPU" when runs had GPUs (the devices setting, or nvidia-smi lists one), else "CPU": what
    compute is counted in (GPU-hours, CPU-hours)."""
    return GPU if config.get("devices") or gpus() else CPU


@functools.lru_cache(maxsize=1)
def gpus() -> tuple[str, ...]:
    """The GPUs nvidia-smi lists, by index; none when it is missing or fails (a CPU-only machine)."""
    if not shutil.which("nvidia-smi"):
        return ()
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU "))


def device_of(log_path: str) -> str:
    """The device a run's summary named (the last ``device:`` line of its log's tail), or ""."""
    from autoresearch.supervise import read_tail

    if not log_path:
        return ""
    found = DEVICE_LINE.findall(read_tail(Path(log_path), 16384))
    return found[-1][:40] if found else ""


def unit_of(device: str, default: str) -> str:
    """GPU or CPU for a device name: cpu is the CPU, any other name (cuda, cuda:0, mps) a GPU;
    `default` (the machine's compute unit) when the run named none."""
    if not device:
        return default
    return CPU if device.split(":")[0].lower() == "cpu" else GPU


@dataclass(frozen=True)
class Cost:
    """The compute and price of some runs: hours per unit, and dollars (None where a price is missing)."""

    hours: dict[str, float]  # "GPU" -> GPU-hours (times gpus), "CPU" -> CPU-hours
    dollars: float | None  # None when some hours have no price set
    unpriced: tuple[str, ...] = ()  # the units with hours but no price

    @property
    def text(self) -> str:
        """``0.120 GPU-hours, 0.010 CPU-hours``."""
        return ", ".join(f"{h:.3f} {u}-hours" for u, h in self.hours.items())

    @property
    def shown(self) -> str:
        """``$1.20``, or ``—`` when some of it has no price."""
        return "—" if self.dollars is None else f"${self.dollars:.2f}"


def rates(config: Any) -> dict[str, float | None]:
    """The price of an hour per unit: GPU (``cost_per_hour``, per GPU) and CPU (``cost_per_hour_cpu``)."""
    return {GPU: config.get("cost_per_hour"), CPU: config.get("cost_per_hour_cpu")}


def cost_of(config: Any, reports: Iterable[Any]) -> Cost:
    """What the runs of these reports cost: each run at its own device's price, smoke runs included."""
    default, gpus = compute_unit(config), config.get("gpus") or 1
    price = rates(config)
    hours = {GPU: 0.0, CPU: 0.0}
    for r in reports:
        runs = r.runs or ()
        if not runs and r.duration:  # a record without its runs: the report's time, on the machine's unit
            hours[default] += r.duration / 3600 * (gpus if default == GPU else 1)
        for run in runs:
            unit = unit_of(getattr(run, "device", ""), default)
            seconds = run.duration + getattr(run, "smoke_seconds", 0.0)
            hours[unit] += seconds / 3600 * (gpus if unit == GPU else 1)
    unpriced = tuple(u for u, h in hours.items() if h and price[u] is None)
    dollars = None if unpriced else sum(h * (price[u] or 0.0) for u, h in hours.items())
    return Cost({u: h for u, h in hours.items() if h or u == default}, dollars, unpriced)


def units_of(config: Any, report: Any) -> str:
    """The devices a report's runs used, as units: ``GPU``, ``CPU`` or ``GPU+CPU``."""
    default = compute_unit(config)
    units = sorted({unit_of(getattr(run, "device", ""), default) for run in report.runs} or {default}, reverse=True)
    return "+".join(units)


def budget_line(config: Any, reports: Iterable[Any]) -> str:
    """``$5.90 of $300 budget, remaining $294.10``; without a budget ``$5.90 (no cost_budget set)``;
    without prices the hours and which price to set."""
    cost, budget = cost_of(config, reports), config.get("cost_budget")
    if cost.dollars is None:
        missing = " and ".join("cost_per_hour" if u == GPU else "cost_per_hour_cpu" for u in cost.unpriced)
        return f"{cost.text} (set {missing} to price them" + (f" against the ${budget:g} budget)" if budget else ")")
    if not budget:
        return f"{cost.shown} ({cost.text}; no cost_budget set)"
    remaining = budget - cost.dollars
    return (f"${cost.dollars:.2f} of ${budget:g} budget, remaining ${max(remaining, 0.0):.2f} ({cost.text})"
            + (" — spent" if remaining <= 0 else ""))


def spent(config: Any, reports: Iterable[Any]) -> str | None:
    """Why the session must stop for its cost (the budget is spent), or None."""
    budget = config.get("cost_budget")
    if not budget:
        return None
    cost = cost_of(config, reports)
    if cost.dollars is None or cost.dollars < budget:
        return None
    return (f"cost budget spent: ${cost.dollars:.2f} of ${budget:g} ({cost.text}); raise cost_budget and "
            "continue with --resume")


def per_experiment(config: Any, reports: Iterable[Any]) -> float | None:
    """What one experiment has cost so far, on average (its runs at their devices' prices, smoke runs
    included); None when nothing has run yet (no run time to estimate from) or a run has no price."""
    ran = [r for r in reports if r.runs or r.duration]
    if not ran:
        return None
    dollars = cost_of(config, ran).dollars
    return None if dollars is None else dollars / len(ran)


def hold(config: Any, reports: Iterable[Any], inflight: int) -> str | None:
    """Why another experiment must not start beside `inflight` ones (``-n N``, with ``cost_budget``),
    or None to start it.

    One may always start when none is in flight: the session stops once the budget is spent, as
    with one worker, so N workers never spend more past the budget than one would. Beside others,
    each in flight counts at the mean cost of an experiment so far, and one more starts only if
    they all fit in the budget. Before any run has finished (the baseline has never run) there is
    no run time to estimate from: one at a time until the first result gives it. Without a price
    for some run the budget can never be spent (:func:`spent`), so nothing is held."""
    budget = config.get("cost_budget")
    if not budget or inflight < 1:
        return None
    reports = list(reports)
    if not any(r.runs or r.duration for r in reports):
        return "cost_budget: nothing has run yet to tell what an experiment costs: one at a time until one has"
    each = per_experiment(config, reports)
    if each is None:
        return None
    used = cost_of(config, reports).dollars or 0.0
    if used + (inflight + 1) * each > budget:
        return (f"cost_budget: ${used:.2f} used and {inflight} in flight at about ${each:.2f} each: "
                f"one more would pass ${budget:g}")
    return None


def data(config: Any, reports: Iterable[Any]) -> dict[str, Any]:
    """The cost as data, for ``status --json`` and ``report --json``."""
    reports = list(reports)
    cost, budget = cost_of(config, reports), config.get("cost_budget")
    return dict(hours=cost.hours, dollars=cost.dollars, budget=budget,
                remaining=None if budget is None or cost.dollars is None else round(budget - cost.dollars, 6),
                unpriced=list(cost.unpriced), line=budget_line(config, reports))
