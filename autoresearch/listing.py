"""``run --collect-only``: what would run, with what each patch changes; with ``--resume``, what
the run has done already (and what ``--rerun`` runs again) marked."""
from __future__ import annotations

from autoresearch.collect import editable_texts
from autoresearch.errors import UsageError
from autoresearch.model import Hypothesis
from autoresearch.reports import Status


def show_collection(config, items: list[Hypothesis], session=None) -> None:
    """--collect-only: what would run, with what each patch changes; with --resume, what the run
    has done already is marked ``[done #3: keep]`` (``[runs again: crash #3]`` with --rerun)."""
    from autoresearch.patches import apply_patch, describe

    done = finished(config, session)
    texts = editable_texts(config)
    marked = again = 0
    for h in items:
        patch = apply_patch(h, texts, config.editable, config.protected, config.get("command"))
        added, removed = patch.counts
        what = describe(h, patch)
        expect = "; ".join(f"{m} {e}" for m, e in h.expect)
        mark = ""
        if h.key in done:
            r, runs_again = done[h.key]
            mark = f"  [{'runs again: ' + str(r.status) if runs_again else 'done'} #{r.seq}" + (
                "" if runs_again else f": {r.status}") + "]"
            again += runs_again
            marked += not runs_again
        print(f"{h.nodeid}{mark}\n    {', '.join(what) or 'no change'}  (+{added} -{removed} lines)"
              + (f"\n    expect {expect}" if expect else ""))
    noun = "hypothesis" if len(items) == 1 else "hypotheses"
    deselected = getattr(session, "deselected", 0)
    summary = f"\n{len(items)} {noun} collected" + (f" ({deselected} deselected by -k)" if deselected else "")
    if session is not None and session.resume:
        summary += f", {marked} done, {len(items) - marked} to run" + (f" ({again} again: --rerun)" if again else "")
    print(f"{summary}; every patch applies to {', '.join(config.editable)}")


def finished(config, session) -> dict:
    """With --resume: hypothesis key -> (its latest finished report, whether --rerun runs it again)."""
    if session is None or not session.resume:
        return {}
    from autoresearch.session import Session, reruns

    try:
        history = Session.open_existing(config, config.getoption("tag")).history
    except UsageError:
        return {}  # no run to continue yet: nothing is done
    words = config.getoption("rerun") or ()
    latest = {r.key: r for r in history if r.key and r.status != Status.INTERRUPTED}
    return {key: (r, reruns(r, words)) for key, r in latest.items()}
