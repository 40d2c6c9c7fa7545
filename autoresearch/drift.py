"""The noise of a session as it goes, read from its reports: the groups σ is pooled over, the
tip re-measured at intervals, and what changed (autoresearch/noise.py does the arithmetic).

    remeasure_every   after this many decisions since the tip was last measured, the tip runs
                      once more (an experiment of the unmodified tip, "the tip, re-measured");
    remeasure_hours   ... or after this many hours; 0 turns either off.

The re-measurements join the tip's runs (the candidates are compared with them, as with every run
of the tip) and σ's pool. A re-measurement whose run lands more than 2 standard errors off the
tip's runs runs again, up to ``repeats`` runs (noise.remeasure_more); when its level is then
beyond the noise (3 standard errors), the machine moved: candidates are compared with the tip's
runs from that re-measurement on (:func:`reference`). A change of σ or of the tip's level beyond
the noise is reported by ``status`` and in the session's summary.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from autoresearch import noise
from autoresearch.reports import MEASURED, Report, Status

REMEASURED = "the tip, re-measured"  # the description of a re-measurement's report


def groups(reports: Sequence[Report], metric: str, extra: Sequence[float] = ()) -> list[list[float]]:
    """Each commit's values of `metric` (the runs of one commit together, however many experiments
    ran it), in order of first appearance, then `extra` (an experiment still running)."""
    by_commit: dict[str, list[float]] = {}
    for r in sorted(reports, key=lambda r: r.seq):
        if r.status in MEASURED and r.commit:
            by_commit.setdefault(r.commit, []).extend(x.metrics[metric] for x in r.runs if x.ok and metric in x.metrics)
    return [*by_commit.values(), list(extra)]


def is_remeasure(r: Report) -> bool:
    return r.is_baseline and r.description == REMEASURED


def due(session: Any) -> bool:
    """Whether the tip is due for a re-measurement: `remeasure_every` decisions or
    `remeasure_hours` hours since it was last measured (its keep, the baseline, or a re-measurement)."""
    every, hours = session.config.get("remeasure_every") or 0, session.config.get("remeasure_hours") or 0.0
    if not (every or hours) or not session.tip or session.shouldstop:
        return False
    found = last_measured(session)
    return found is not None and overdue(session.config, *found)


def last_measured(session: Any, skip: int | None = None) -> tuple[int, float] | None:
    """(measured decisions since, when) the tip was last measured (its keep, the baseline, or a
    re-measurement), over the history less experiment `skip`; None when it never was (then it is
    never due)."""
    done = [r for r in session.history if r.status in MEASURED and r.seq != skip]
    last = max((i for i, r in enumerate(done) if r.commit and r.commit == session.tip), default=None)
    return None if last is None else (len(done) - 1 - last, done[last].started)


def overdue(config: Any, since: int, measured_at: float) -> bool:
    """The rule itself: `since` measured decisions after the tip's last measurement at
    `measured_at` reach `remeasure_every`, or its hours reach `remeasure_hours` (the one-worker
    loop and the workers' decisions both ask it)."""
    every, hours = config.get("remeasure_every") or 0, config.get("remeasure_hours") or 0.0
    return bool((every and since >= every) or (hours and since and time.time() - measured_at >= hours * 3600))


def remeasure(session: Any) -> Report | None:
    """Run the tip once more, as its own experiment, when it is due (the run loop calls it after
    each decision)."""
    if not due(session):
        return None
    from autoresearch.protocol import runprotocol

    exp = session.experiment(None)
    exp.remeasure = True
    exp.description = REMEASURED
    return runprotocol(exp)


def of(reports: Sequence[Report], metric: str, window: int = noise.WINDOW) -> tuple[noise.Drift, str]:
    """(what changed, when: " at 02:10") over a session's reports: σ over the last `window`
    degrees of freedom against σ before, and the tip's latest re-measurements against its runs
    before them."""
    done = [r for r in sorted(reports, key=lambda r: r.seq) if r.status in MEASURED]
    before, now, noisier, quieter = noise.sigma_change(groups(done, metric)[:-1], window)
    shift, when = 0.0, ""
    tip = done[-1].commit if done else ""
    tip = next((r.commit for r in reversed(done) if r.status == Status.KEEP and r.commit), tip)
    runs = [r for r in done if r.commit == tip]
    latest = [r for r in runs if is_remeasure(r)][-1:]
    if latest and len(runs) > len(latest):
        earlier = [v for r in runs if r not in latest for v in r.values]
        recent = [v for r in latest for v in r.values]
        sigma, _ = noise.pooled(groups(done, metric)[:-1], window)
        shift = noise.level_shift(earlier, recent, sigma)
        if shift:
            when = time.strftime(" at %H:%M", time.localtime(latest[0].started))
    return noise.Drift(before, now, shift, noisier, quieter), when


def line(reports: Sequence[Report], metric: str, window: int = noise.WINDOW) -> str:
    """The drift in one short line for status and the summary ("" when nothing changed)."""
    d, when = of(reports, metric, window)
    return d.line(metric, when)


def estimates(config: Any) -> str:
    """Which estimates are in use, in one line for the session's header."""
    every, hours = config.get("remeasure_every") or 0, config.get("remeasure_hours") or 0.0
    again = " or ".join(x for x in (f"{every} decisions" if every else "", f"{hours:g} h" if hours else "") if x)
    return (f"noise: robust (outliers beyond {noise.OUTLIER:g} robust σ flagged and left out, one more run before "
            f"a keep rests on one); σ pooled over the last {config.get('noise_window')} degrees of freedom; "
            f"design {config.get('design')}{PAIRED if config.get('design') == 'paired' else ''}; the tip re-measured "
            + (f"every {again}" if again else "never"))


PAIRED = (" (each candidate run right after a run of the tip with its seed, decided on the differences; "
          "σ of a difference pooled over the session's pairs)")


def reference(session: Any, commit: str, metric: str, sigma: float | None) -> tuple[float, ...]:
    """The runs of `commit` a candidate is compared with: all of them, or, when a re-measurement
    found the machine's level moved beyond the noise, those from that re-measurement on (the tip
    as measured under today's conditions; noise.since_shift)."""
    measurements = []
    for r in sorted((r for r in session.reports_of(commit) if r.status in MEASURED), key=lambda r: r.seq):
        runs = [x.metrics for x in r.runs if x.ok] if r.runs else [r.metrics]
        measurements.append([m[metric] for m in runs if metric in m])
    return tuple(noise.since_shift(measurements, sigma))


def moved_note(experiment: Any, values: Sequence[float], metric: str, sigma: float | None) -> str:
    """For a re-measurement of the tip whose level moved beyond the noise: what it means, for its reason."""
    earlier = reference(experiment.session, experiment.base_commit, metric, sigma)
    shift = noise.level_shift(earlier, values, sigma)
    return (f"; the level moved by {shift:+.4g} beyond the noise: candidates are compared with these runs "
            "from now on") if shift else ""


def robust_scale(session, metric: str, values) -> float | None:
    """The robust σ outliers are flagged with (autoresearch/noise.py), over the session's runs."""
    if hasattr(session, "groups"):  # the session's index: the same groups, without a walk of the history
        return noise.robust_sigma(session.groups(metric, values))
    return noise.robust_sigma(groups(session.history, metric, values))
