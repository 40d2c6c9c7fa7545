"""The default run loop: the baseline first, then the queue, one experiment at a time.

A plugin replaces it by implementing ``autoresearch_runloop`` (firstresult), as pytest-xdist
replaces ``pytest_runtestloop``. What the queue holds is the session's (``session.queue()``: the
experiment a killed runner left in flight, then the collected hypotheses, then whatever
``autoresearch_queue_empty`` hands over, as ``--watch`` does); when to stop early is
``session.shouldstop``, which plugins set (``-x``).
"""
from __future__ import annotations

from autoresearch import hookimpl


def run_baseline(session) -> bool:
    """Run the unmodified code until it has succeeded once in this run; False if it crashed."""
    if session.baseline_done:
        return True
    hook = session.config.hook
    report = hook.autoresearch_experiment_protocol(experiment=session.experiment(None))
    if report.status == "keep":
        return True
    session.shouldstop = session.shouldstop or (
        f"the baseline crashed ({report.root_cause}); if the cause is outside "
        f"{', '.join(session.config.editable)} (data, environment), fix it and continue with --resume; if "
        "the code itself is broken, commit a fix and start a new run with --tag NAME")
    return False


@hookimpl(trylast=True)
def autoresearch_runloop(session) -> bool:
    if not run_baseline(session):
        return True
    hook = session.config.hook
    for h in session.queue():
        hook.autoresearch_experiment_protocol(experiment=session.experiment(h))
        if session.shouldstop:
            break
    return True
