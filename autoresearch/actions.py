"""What :meth:`autoresearch.scheduler.Scheduler.step` says to do (see that module's docstring)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoresearch.scheduler import Job


@dataclass(frozen=True)
class Measure:
    job: Job
    worker: int
    again: bool = False


@dataclass(frozen=True)
class Run:
    job: Job
    worker: int


@dataclass(frozen=True)
class Cancel:
    job: Job
    dropped: int  # runs it had asked for that will not start


@dataclass(frozen=True)
class Decide:
    job: Job


@dataclass(frozen=True)
class Resume:
    job: Job  # rounds: a paused winner's confirmation runs, now (it is the round's best)


@dataclass(frozen=True)
class Release:
    job: Job  # rounds: a paused winner's measurement ends here (another was kept)
