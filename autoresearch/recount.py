"""What a decision with -n > 1 asks before and after it (plugins/workers.py's ParallelLoop, on the
main thread), so that serial's decisions are one worker's:

    recount   at a candidate's decision, its runs asked again in seed order with what is decided
              now (it was measured while earlier ones were undecided): runs beyond the rerun
              hook's "no" are surplus; when one worker would have run it more, its measurement
              goes on (go_on) and it is decided after
    due       after each decision, whether the tip is due for a re-measurement, counted in the
              order of the decisions (autoresearch/drift.py's rule, as the one-worker loop asks it)
"""
from __future__ import annotations

from autoresearch.drift import REMEASURED, last_measured, overdue
from autoresearch.outcomes import MEASURED
from autoresearch.scheduler import Job


class Decisions:
    """A mixin of ParallelLoop: `session`, `sched`, `futures`, `pool`, `events` and `spread` are its."""

    since: int | None = None  # measured decisions since the tip was last measured (None: not counted yet)
    measured_at = 0.0  # when the tip was last measured

    def due(self, report) -> bool:
        """Whether the tip is due for a re-measurement after this decision, as the one-worker loop
        asks after each (autoresearch/drift.py's rule: `remeasure_every` measured decisions or
        `remeasure_hours` since the tip was last measured), counted here in the order of the
        decisions (a re-measurement's number comes after those dispatched before it)."""
        config, session = self.session.config, self.session
        if self.since is None:  # as drift.due counts: over the reports so far (never, for a tip never measured)
            found = last_measured(session, skip=report.seq)
            if found is not None:
                self.since, self.measured_at = found
        if report.status in MEASURED:
            if report.commit == session.tip:
                self.since, self.measured_at = 0, report.started
            elif self.since is not None:
                self.since += 1
        if self.since is None or session.shouldstop or not session.tip \
                or any(j.item.name == REMEASURED for j in self.sched.jobs):
            return False
        return overdue(config, self.since, self.measured_at)

    def recount(self, job: Job) -> bool:
        """At its decision: the runs that count, asked again in seed order with what is decided now
        (it was measured while earlier ones were undecided); True: one worker would have run it
        more, and its measurement goes on (its next runs on free workers, as before)."""
        exp, hook = job.payload, self.session.config.hook
        if not exp.runs or getattr(exp, "stale", "") or exp.should_stop():
            return False
        if not self.sched.recounted(job, exp.runs, lambda runs: runs[-1].ok and hook.autoresearch_experiment_rerun(
                experiment=exp, runs=runs)):
            return False
        self.futures[job] = self.pool.submit(self.go_on, job)
        return True

    def go_on(self, job: Job) -> None:
        """The runs a decision found missing (recount), on the pool's thread."""
        exp, hook, likely = job.payload, self.session.config.hook, None
        try:
            self.spread(job, exp, lambda runs: hook.autoresearch_experiment_rerun(experiment=exp, runs=runs))
            likely = self.kept_now(job)
        finally:
            self.events.put(("measured", job, likely))
