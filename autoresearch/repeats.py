"""The runs of one measurement with -n N (autoresearch/scheduler.py): started several at once,
counted in seed order as one worker would (Repeats), counted again at the decision with what is
decided then (recount), and the runs thrown away (Waste).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass
class Waste:
    stale: int = 0
    cancelled: int = 0
    surplus: int = 0
    runs: int = 0  # every run, wasted or not

    @property
    def total(self) -> int:
        return self.stale + self.cancelled + self.surplus

    @property
    def share(self) -> float:
        return self.total / self.runs if self.runs else 0.0

    def line(self) -> str:
        """"wasted runs: 3 of 40 (8%): 2 stale, 1 cancelled" (the summary's and status' line)."""
        parts = [f"{n} {what}" for what, n in (("stale", self.stale), ("cancelled", self.cancelled),
                                                ("surplus", self.surplus)) if n]
        return f"wasted runs: {self.total} of {self.runs} ({self.share:.0%})" + (f": {', '.join(parts)}" if parts else "")


class Repeats:
    """The runs of one measurement, started several at once and counted in seed order, as one
    worker would have: after each run, ``more(runs so far)`` (the rerun hook) says whether
    another is needed; runs started beyond the first "no" are surplus. The baseline opens with 3
    (`opening`): a deterministic workload's baseline stops there (the verdict's rule), a noisy
    one's goes on to `ahead`."""

    def __init__(self, ahead: int, opening: int = 0, grey: int = 0) -> None:
        self.ahead = ahead  # the runs a decision is likely to need (the repeats setting)
        self.opening = opening  # the first batch brings it to this many runs (0: to `ahead`)
        self.grey = grey  # in the grey zone, runs ahead up to this many (0: one at a time)
        self.checked = 0
        self.confirming = False

    def step(self, runs: Sequence[Any], more: Callable[[tuple], bool],
             likely: Callable[[tuple], bool] | None = None, rush: int = 0) -> tuple[int, int]:
        """(how many of `runs` count, how many runs to start now; 0: the measurement is over).
        `likely(runs)`: whether it would be kept now (the runs ahead confirm a keep: all at once;
        else it is in the grey zone: one at a time, or up to `rush` runs at once when every
        decision after it waits for it: Scheduler.rush); ``self.confirming`` says which."""
        for i in range(self.checked, len(runs)):
            self.checked = i + 1
            if not more(tuple(runs[:i + 1])):
                return i + 1, 0
        if likely is not None:
            self.confirming = likely(tuple(runs))
            return len(runs), max(1, (self.ahead if self.confirming else max(self.grey, rush)) - len(runs))
        target = self.opening if self.opening and self.checked <= 1 else self.ahead
        return len(runs), max(1, min(target, self.ahead) - len(runs))


def recount(runs: Sequence[Any], more: Callable[[tuple], bool]) -> tuple[int, bool]:
    """At its decision: how many of `runs` count, asked again in seed order with what is decided
    now (the measurement asked while earlier experiments were undecided: a guess), and whether
    one worker would run it more. The decision then uses exactly one worker's runs."""
    for i in range(1, len(runs) + 1):
        if not more(tuple(runs[:i])):
            return i, False
    return len(runs), True
