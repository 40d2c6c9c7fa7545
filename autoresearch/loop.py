"""The default run loop: the baseline first, then the queue, one experiment at a time.

A plugin replaces it by implementing ``autoresearch_runloop`` (firstresult), as pytest-xdist
replaces ``pytest_runtestloop``; each experiment goes through ``protocol.runprotocol`` (the
measure hook, then the decide hook), the same two hooks plugins/workers.py calls with -n > 1. What the queue holds is the session's (``session.queue()``: the
experiment a killed runner left in flight, then the collected hypotheses, then whatever
``autoresearch_queue_empty`` hands over, as ``--watch`` does); when to stop early is
``session.shouldstop``, which plugins set (``-x``).
"""
from __future__ import annotations

from autoresearch import hookimpl
from autoresearch.cost import compute_unit, gpus  # noqa: F401 (their home: the machine's compute is what a run costs)
from autoresearch.protocol import runprotocol
from autoresearch.reports import Status


def check_workers(value: str) -> str | None:
    if value == "auto" or (value.isdigit() and 1 <= int(value) <= 256):
        return None
    return "give a number from 1 to 256, or auto"


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("workers", "-n", "--workers", default="1", check=check_workers,
                      help="experiments run at once, each by a worker with a git worktree and a device of its own; "
                           "auto: one per device (the devices setting, or each GPU nvidia-smi -L lists)")
    parser.addsetting("devices", type="list", default=[],
                      help="GPUs, one per worker, as CUDA_VISIBLE_DEVICES values (e.g. [\"0\", \"1\"]); default: "
                           "what nvidia-smi -L lists; without GPUs, the CPU cores are split between workers")


def resolve_workers(config) -> tuple[int, list[str]]:
    """(how many workers, their devices): the workers and devices settings, auto resolved."""
    workers = config.get("workers", "1")
    devices = list(config.get("devices") or [])
    if workers == "auto" or (int(workers) > 1 and not devices):
        devices = devices or list(gpus())
    n = (len(devices) or 1) if workers == "auto" else int(workers)
    return n, devices


def run_baseline(session) -> bool:
    """Run the unmodified code until it has succeeded once in this run; False if it crashed."""
    if session.baseline_done:
        return True
    return baseline_decided(session, runprotocol(session.experiment(None)))


def baseline_decided(session, report) -> bool:
    """True for a baseline that succeeded; for one that did not, stop the session, saying what to do."""
    if report.status == Status.KEEP:
        return True
    session.shouldstop = session.shouldstop or (
        f"the baseline crashed ({report.root_cause}); if the cause is outside "
        f"{', '.join(session.config.editable)} (data, environment), fix it and continue with --resume; if "
        "the code itself is broken, commit a fix and start a new run with --tag NAME")
    return False


@hookimpl(trylast=True)
def autoresearch_runloop(session) -> bool:
    if session.shouldstop:  # stopped before anything ran (a cost budget already spent)
        return True
    if not run_baseline(session):
        return True
    from autoresearch.drift import remeasure

    for h in session.queue():
        runprotocol(session.experiment(h))
        if session.shouldstop:
            break
        remeasure(session)  # the tip once more, every remeasure_every decisions (autoresearch/drift.py)
    return True
