"""The outcomes, as types: the process's exit code (:class:`ExitCode`), an experiment's outcome
(:class:`Status`) and why a run gave no result (:class:`Cause`), and :func:`printable`.

Split out of :mod:`autoresearch.reports` (which re-exports every name) so that a command starts
without the report's dataclasses.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The process's exit status, in pytest's manner."""

    #: The session completed: every selected hypothesis ran, whatever the verdicts.
    OK = 0
    #: The session stopped early: the baseline crashed, -x met a crash, the cost budget is spent, git
    #: failed, the disk is full.
    STOPPED = 1
    #: An internal error in the runner or a plugin (a bug: please report it).
    INTERNAL_ERROR = 3
    #: Bad usage: arguments, settings, repository state, or a collection error.
    USAGE_ERROR = 4
    #: Nothing was collected (no hypothesis files, or -k selected none).
    NO_HYPOTHESES_COLLECTED = 5
    #: Interrupted by Ctrl-C (SIGINT), 128 + 2 as a shell reports it.
    INTERRUPTED = 130
    #: Standard output was closed by its reader (``| head``), 128 + SIGPIPE as a shell reports it.
    OUTPUT_CLOSED = 141
    #: Terminated by SIGTERM, 128 + 15.
    TERMINATED = 143


def printable(text: str) -> str:
    """`text` with every control character written as its escape (``\\x1b``): what a workload
    printed can be shown on a terminal, in a TSV cell or a journal without taking them over."""
    if text.isprintable():  # the usual case, at C speed (a space is printable)
        return text
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)


class Status(str, enum.Enum):
    """An experiment's outcome: str-valued, so the ledger, results.tsv and results.jsonl read and
    write the same words they always did (``Status("keep")``, ``Status.KEEP == "keep"``)."""

    KEEP = "keep"  # better, beyond the noise: the branch moves to its commit
    DISCARD = "discard"  # not better (or a conflict, or pruned): the branch stays where it was
    CRASH = "crash"  # the workload gave no result
    INTERRUPTED = "interrupted"  # stopped before its commit point: not a result; it runs again on --resume

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: The outcomes that are results (results.tsv's rows): every status but INTERRUPTED.
DECIDED = (Status.KEEP, Status.DISCARD, Status.CRASH)
#: The outcomes whose runs measured the metric: what a sample of a commit, and the noise, are made of.
MEASURED = (Status.KEEP, Status.DISCARD)


class Cause(str, enum.Enum):
    """Why a run of the workload gave no usable result: data, never a sentence to search."""

    TIMEOUT = "timeout"  # killed by the runner at the hard time limit
    OUT_OF_MEMORY = "out-of-memory"  # the workload said so (CUDA OOM, MemoryError)
    NAN = "nan"  # the loss or the metric became NaN or exploded
    EXIT_CODE = "exit-code"  # a non-zero exit: an exception, a failed assertion
    NO_METRIC = "no-metric"  # exited 0 but printed no value of the metric
    KILLED = "killed"  # a signal from outside the runner (the kernel's OOM killer sends SIGKILL)
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or a closed output stopped the runner
    PATCH_FAILED = "patch-failed"  # nothing ran: its baseline could not be built on
    CONFLICT = "conflict"  # nothing ran: the patch no longer applies to the tip kept experiments changed
    PRUNED = "pruned"  # stopped early by a plugin (its learning curve stayed behind): a discard, no crash
    FORGED = "forged"  # the log holds the metric more than once: a forged or repeated summary
    EVALUATOR = "evaluator"  # the protected evaluator failed or printed no metric for this run
    DEVICE = "device"  # it trained on another device than require_device names (a CPU fallback)
    SMOKE = "smoke"  # the short smoke run before the full one failed (smoke_steps, smoke_budget): seconds, not a run

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)
