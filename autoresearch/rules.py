"""The rules a run's results support, as data: ALWAYS and NEVER, each with its evidence.

One function draws them from the reports (``session.history``, read from the ledger), so the
lessons plugin renders them into lessons.md and ``status`` counts them from the same source, and
nothing reads them back out of the prose. A rule needs at least two results beyond the noise (a
crash is no noise); a result within the noise is no evidence either way.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from autoresearch.reports import Cause, Report, Status, results

#: What a crash of each cause is called in a rule ("... ended in timeouts").
CRASH_KINDS = {Cause.TIMEOUT: "timeouts", Cause.OUT_OF_MEMORY: "out-of-memory crashes",
               Cause.KILLED: "kills (out of memory?)", Cause.NAN: "NaN/exploding losses",
               Cause.PATCH_FAILED: "patches that did not apply", Cause.EXIT_CODE: "errors (a non-zero exit)",
               Cause.NO_METRIC: "runs that printed no metric", Cause.SMOKE: "failed smoke runs"}


def crash_kind(r: Report) -> str:
    """What kind of crash, by its Cause; "crashes" for a cause this version does not know."""
    try:
        return CRASH_KINDS.get(Cause(r.cause), "crashes")
    except ValueError:
        return "crashes"


@dataclass(frozen=True)
class Rule:
    """One rule: ``NEVER raise LR because all 2 tries made val_bpb worse``."""

    kind: str  # NEVER or ALWAYS
    action: str  # repeat (changes like these), raise or lower (a parameter)
    subject: str  # the parameter's name, or the crash's kind
    reason: str  # why, in words: "all 2 tries were kept"
    evidence: tuple[int, ...]  # the experiments' numbers it is drawn from

    @property
    def text(self) -> str:
        """The rule in one sentence, as lessons.md writes it (without its date)."""
        if self.action == "repeat":
            return f"{self.kind} repeat changes like {self.subject} because {self.reason}"
        if self.kind == "ALWAYS":
            return f"ALWAYS consider {self.action}ing {self.subject} when tuning because {self.reason}"
        return f"{self.kind} {self.action} {self.subject} because {self.reason}"


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def derive(reports: Iterable[Report]) -> list[Rule]:
    """The rules the results support: crashes of one kind twice or more, and a parameter moved the
    same way twice or more beyond the noise with one outcome (all worse, or all kept)."""
    done = results(reports)
    out = []
    crashes: dict[str, list[Report]] = defaultdict(list)
    for r in done:
        if r.status == Status.CRASH and not r.setup_crash:  # a broken setup is no lesson about ideas
            crashes[crash_kind(r)].append(r)
    for kind, rs in crashes.items():
        if len(rs) >= 2:
            out.append(Rule("NEVER", "repeat", ", ".join(r.name for r in rs[:4]),
                            f"{len(rs)} of them ended in {kind}", tuple(r.seq for r in rs)))
    moves: dict[tuple[str, bool], list[Report]] = defaultdict(list)
    for r in done:
        if len(r.changes) == 1 and r.status != Status.CRASH and r.improvement is not None and r.beyond_noise:
            name, old, new = r.changes[0]
            a, b = _num(old), _num(new)
            if a is not None and b is not None and a != b:
                moves[(name, b > a)].append(r)
    for (name, up), rs in sorted(moves.items()):
        verb, seqs = ("raise" if up else "lower"), tuple(r.seq for r in rs)
        if len(rs) >= 2 and all(r.improvement < 0 for r in rs):
            out.append(Rule("NEVER", verb, name, f"all {len(rs)} tries made {rs[0].metric} worse", seqs))
        elif len(rs) >= 2 and all(r.status == Status.KEEP for r in rs):
            out.append(Rule("ALWAYS", verb, name, f"all {len(rs)} tries were kept", seqs))
    return out
