"""Paired runs (``design = "paired"``): before each run of a candidate, the commit it builds on
runs once with the same seed, and the verdict decides on the differences.

    TipRun       the base commit's run, as the executor runs any experiment: the seed the
                 candidate's next run gets, the base commit's files, logs of its own
                 (``NNN-name.tip.log``, ``NNN-name.tip.1.log``, ...)
    PairedRuns   the plugin (registered by plugins/verdict.py when design is "paired"): before
                 each run of a candidate, its pair; the tip's runs are kept on the experiment
                 (``experiment.paired``), in the order of the candidate's runs, and in the
                 ledger (``{"event": "paired", "seq": ..., "commit": ..., "run": {...}}``)
    differences  the improvement of each candidate run over the tip's run with its seed

Run k of the candidate and run k of the tip both get seed k (``Experiment.seed``: the
candidate's k-th run of a new commit), one right after the other on the same worker (with
``-n > 1`` each worker runs its own candidate's pairs, tip then candidate; pairs are matched by
seed, so repeats that run at once on several workers pair all the same). What a pair shares (the
seed's effect, the machine's level at that moment) cancels in the difference; the difference
has twice a run's variance when nothing is shared. σ of a difference is pooled over the
session's decided paired candidates (noise.paired_sigma), their pairs read from the ledger: a
resumed session pools what an uninterrupted one would, and a verdict asked for on the way (a
worker's likely keep) adds nothing. Without git (``-p no:git``) there is no
commit to run beside the candidate's files: the runs are unpaired.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Sequence

from autoresearch import hookimpl
from autoresearch.reports import RunResult, Status
from autoresearch.session import Experiment


class TipRun(Experiment):
    """One run of the commit a candidate builds on, with the seed the candidate's next run gets."""

    def __init__(self, candidate: Experiment, seed: int, index: int) -> None:  # noqa: D107 (a view, not a new experiment)
        self.__dict__.update(candidate.__dict__)  # its session, worker, worktree, cancel event
        self.candidate = candidate
        self.commit = candidate.base_commit
        self.patch = None
        self.smoke = None
        self.runs = []
        self.nodeid = f"{candidate.nodeid}[tip]"
        self.pair_seed, self.index = seed, index

    @property
    def seed(self) -> int:  # type: ignore[override]
        return self.pair_seed

    @property
    def log_path(self) -> Path:  # type: ignore[override]
        n = self.index
        return self.session.run_dir / "logs" / f"{self.candidate.label}.tip{f'.{n}' if n else ''}.log"


class PairedRuns:
    """design = "paired": each run of a candidate follows a run of its base commit with the same seed."""

    def __init__(self, config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.tips: dict[int, dict[int, Any]] | None = None  # each candidate's tip runs, by seed; read from the ledger once

    @hookimpl(wrapper=True)
    def autoresearch_experiment_run(self, experiment):
        if pairs(experiment):
            from autoresearch.protocol import call

            with self.lock:  # repeats run at once on several workers each take a seed of their own
                seed = experiment.seed
                tip = TipRun(experiment, seed, len(getattr(experiment, "paired", ())))
                experiment.paired = [*getattr(experiment, "paired", ()), None]
            result = call(tip)
            experiment.session.ledger.append({"event": "paired", "seq": experiment.seq, "commit": tip.commit,
                                              "run": result.to_dict()})  # kept in the record; replay skips it
            with self.lock:  # after the ledger line: σ of a difference read from the ledger misses no pair
                experiment.paired[tip.index] = result
                if self.tips is not None:
                    self.tips.setdefault(experiment.seq, {})[result.seed] = result
        return (yield)

    def sigma_groups(self, experiment, current: Sequence[float]) -> list[list[float]]:
        """The differences of every paired candidate of this session decided before `experiment`
        (in the ledger: the same after ``--resume``; a verdict asked for on the way, such as a
        worker's likely keep, adds nothing), then its own."""
        session, config = experiment.session, self.config
        metric, direction = config.get("metric"), config.get("direction")
        with self.lock:
            tips = self.loaded(session)
            decided = [r for r in session.history if r.seq != experiment.seq and r.seq in tips and r.key
                       and r.status in (Status.KEEP, Status.DISCARD)]
            groups = [list(matched(tips[r.seq], r.runs, metric, direction)) for r in decided]
        return [g for g in groups if g] + [list(current)]

    def loaded(self, session) -> dict[int, dict[int, Any]]:
        """The tip runs of every paired candidate, by experiment number and seed: the ledger's
        "paired" events the first time (a resumed session's too), then as they run (the lock held)."""
        if self.tips is None:
            self.tips = {}
            path = session.ledger.path
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else ():
                if '"paired"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line: what it held runs again
                if entry.get("event") == "paired" and isinstance(entry.get("run"), dict):
                    run = RunResult.from_dict(entry["run"])
                    self.tips.setdefault(entry["seq"], {})[run.seed] = run  # a rerun's pair replaces the killed one's
        return self.tips


def pairs(experiment: Any) -> bool:
    """Whether a run of this experiment is paired: a candidate's (not the baseline's, a re-measurement,
    a smoke run or a tip run itself), in a session with git."""
    return (experiment.hypothesis is not None and not isinstance(experiment, TipRun)
            and getattr(experiment, "smoke", None) is None and not experiment.session.scratch
            and experiment.base_commit != "")


def differences(experiment: Any, runs: Sequence[Any], metric: str, direction: str) -> tuple[float, ...]:
    """The improvement of each of the candidate's runs over the tip's run with its seed (positive:
    better), for the pairs where both printed the metric."""
    return matched({t.seed: t for t in getattr(experiment, "paired", ()) if t is not None}, runs, metric, direction)


def matched(tips: dict[int, Any], runs: Sequence[Any], metric: str, direction: str) -> tuple[float, ...]:
    """The improvement of each run over the tip's run with its seed (`tips` by seed), where both printed the metric."""
    from autoresearch.reports import sign

    tips = {seed: t for seed, t in tips.items() if t.ok and metric in t.metrics}
    return tuple(sign(direction) * (run.metrics[metric] - tips[run.seed].metrics[metric])
                 for run in runs if run.ok and metric in run.metrics and run.seed in tips)


def plugin(config) -> PairedRuns | None:
    """The paired-runs plugin of this session, when design is "paired"."""
    pm = getattr(config, "pluginmanager", None)
    return None if pm is None else pm.get_plugin("verdict-paired")


def evidence(experiment: Any, runs: Sequence[Any], metric: str, direction: str, tip_commit: str,
             sigma: float | None, scale: float | None):
    """(differences, σ of a difference, its robust σ) when this candidate's runs are paired with
    runs of the tip, else None (design "unpaired"; no git; with several workers, a tip that moved
    on since the candidate started: then it is compared unpaired with the tip's runs)."""
    from autoresearch import noise

    paired = plugin(experiment.session.config)
    if paired is None or tip_commit != experiment.base_commit:
        return None
    diffs = differences(experiment, runs, metric, direction)
    if not diffs:
        return None
    window = experiment.session.config.get("noise_window") or noise.WINDOW
    sd, scale_d = noise.paired_sigma(paired.sigma_groups(experiment, diffs), sigma, scale, window)
    return diffs, sd, scale_d
