"""What the protocol's phases produce: how the workload ended, the verdict, the report."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class ExitCode(enum.IntEnum):
    """The process's exit status, in pytest's manner."""

    #: The session completed: every selected hypothesis ran, whatever the verdicts.
    OK = 0
    #: The session stopped early at a crash: the baseline crashed, or -x met a crash.
    STOPPED = 1
    #: An internal error in the runner or a plugin (a bug: please report it).
    INTERNAL_ERROR = 3
    #: Bad usage: arguments, settings, repository state, or a collection error.
    USAGE_ERROR = 4
    #: Nothing was collected (no hypothesis files, or -k selected none).
    NO_HYPOTHESES_COLLECTED = 5
    #: Interrupted by Ctrl-C (SIGINT), 128 + 2 as a shell reports it.
    INTERRUPTED = 130
    #: Terminated by SIGTERM, 128 + 15.
    TERMINATED = 143


@dataclass(frozen=True)
class RunResult:
    """How the workload process ended."""

    returncode: int | None  # None when it was killed by the runner (timeout or interrupt)
    duration: float  # seconds of wall time
    log_path: str
    timed_out: bool = False
    interrupted: bool = False
    signal: int | None = None  # the signal that killed it, when one did


@dataclass(frozen=True)
class Verdict:
    status: str  # keep, discard or crash
    reason: str  # in words: "keep: -0.0062 val_bpb for +4 lines"


@dataclass(frozen=True)
class Report:
    """Everything known about one finished experiment; handed to every logreport hook."""

    seq: int  # 0 for the baseline, then 1, 2, ...
    tag: str
    nodeid: str
    name: str
    key: str  # content hash of the hypothesis ("" for the baseline)
    description: str
    hypothesis: str
    status: str  # keep, discard, crash or interrupted
    reason: str
    metric: str
    direction: str
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    expectation: str | None = None  # confirmed, refuted, or None when nothing was expected
    expectation_details: tuple[str, ...] = ()
    expect: tuple[tuple[str, str], ...] = ()
    changes: tuple[tuple[str, str, str], ...] = ()  # (NAME, old, new) of set patches
    patch_kinds: tuple[str, ...] = ()
    commit: str = ""
    baseline_commit: str = ""
    lines_added: int = 0
    lines_removed: int = 0
    started: float = 0.0  # unix time
    duration: float = 0.0
    log_path: str = ""
    returncode: int | None = None
    root_cause: str = ""
    log_tail: str = ""

    @property
    def is_baseline(self) -> bool:
        return self.seq == 0

    @property
    def value(self) -> float | None:
        return self.metrics.get(self.metric)

    @property
    def baseline_value(self) -> float | None:
        return self.baseline_metrics.get(self.metric)

    @property
    def improvement(self) -> float | None:
        """How much better than its baseline, positive when better, direction-aware."""
        if self.value is None or self.baseline_value is None:
            return None
        delta = self.value - self.baseline_value
        return -delta if self.direction == "minimize" else delta

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("expectation_details", "patch_kinds"):
            known[name] = tuple(known.get(name, ()))
        for name in ("expect", "changes"):
            known[name] = tuple(tuple(x) for x in known.get(name, ()))
        return cls(**known)
