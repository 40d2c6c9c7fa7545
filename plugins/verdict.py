"""verdict: keep only what beats the noise, by the seed's simplicity criterion, and the tip rule.

After each run of a candidate, :func:`judge` decides keep, discard, or again (another run, up to
``max_repeats``), comparing the candidate's mean with its baseline's (every run of that commit)
against the run-to-run noise pooled over the session (autoresearch/stats.py: the sequential
rule). Then, on top:

    beyond the noise, better                    -> keep, if the simplicity criterion agrees:
        better by more than keep_threshold (0.005)          keep whatever the added lines
        better by less, adding max_added_lines (20)+         discard
        better by less than min_improvement (0: off)         discard
    within the noise, and the code got simpler  -> keep (a simplification win)
    a keep built on another commit than the tip -> discard unless it also beats the tip
    a keep                                      -> run until it has ``repeats`` runs (the tip's
                                                   value is the mean of all its runs), and decide again

The baseline runs ``repeats`` times (default 5): the first measure of the noise. Thresholds are
in the metric's units, or a share of the baseline's value ("0.1%"). Complexity is the net number
of lines the patch adds. A plugin can replace the whole rule: implement
``autoresearch_make_verdict`` with ``tryfirst=True``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autoresearch import Verdict, hookimpl
from autoresearch.config import positive
from autoresearch.reports import MINIMIZE, Status, sign, failed_verdict
from autoresearch.objectives import (OBJECTIVES, Core, Objective, check_directions, check_names, check_targets,
                                     check_weights, core, metric_core, target_rule, why_of)
from autoresearch.stats import AGAIN, DISCARD, KEEP, Evidence, amount, check_amount, sequential


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("noise_k", "--noise-k", type="float", default=2.0, check=positive,
                      help="how far beyond the noise a decision must be, in standard errors of the difference")
    parser.addsetting("repeats", "--repeats", type="int", default=5, check=positive,
                      help="runs of the baseline (the first measure of the noise), and the fewest runs a keep has")
    parser.addsetting("max_repeats", "--max-repeats", type="int", default=8, check=positive,
                      help="the most runs a candidate in the grey zone gets before it is decided on the means")
    parser.addsetting("keep_threshold", type="amount", default=0.005, check=check_amount,
                      help="an improvement above this (or a share of the baseline, \"0.5%\") is kept whatever "
                           "the added lines")
    parser.addsetting("min_improvement", type="amount", default=0.0, check=check_amount,
                      help="the smallest improvement worth keeping, beyond the noise (a number, or \"0.1%\"); "
                           "0: whatever beats the noise")
    parser.addsetting("max_added_lines", type="int", default=20, check=positive,
                      help="an improvement below keep_threshold that adds this many lines or more is discarded")
    parser.addsetting("noise_window", type="int", default=40, check=positive,
                      help="σ is pooled over this many of the most recent degrees of freedom (the noise now)")
    parser.addsetting("remeasure_every", type="int", default=10,
                      help="the tip runs once more after this many decisions since it was last measured (0: never)")
    parser.addsetting("remeasure_hours", type="float", default=0.0,
                      help="... or after this many hours (0: off)")
    parser.addsetting("design", type="str", default="unpaired", choices=("unpaired", "paired"),
                      help="unpaired: a candidate's runs against all the tip's runs; paired: each candidate run "
                           "right after a run of the tip with the same seed, decided on the differences (pays "
                           "only when the pair shares much of the noise; see docs/noise.md)")
    parser.addsetting("targets", type="table", default={}, check=check_targets,
                      help="goals for metrics, as expectations: peak_vram_mb = \"<= 80000\", runaway_rate = "
                           "\"< 0.05\" (a table); a keep must not miss one its baseline met; the baseline's unmet "
                           "ones are shown in the header, status and report")
    parser.addsetting("targets_gate", "--targets-gate", type="bool", default=False,
                      help="make every target a hard gate: a keep must meet them all (by default a step toward "
                           "an unmet target is kept)")
    parser.addsetting("objective", "--objective", default="metric", choices=OBJECTIVES,
                      help="what decides keep or discard: metric (the metric setting alone), lexicographic "
                           "(metrics in order, each beyond its own noise), weighted (weights on changes in units of "
                           "each metric's noise), targets (more targets met wins; as many: the metric decides); "
                           "see docs/objectives.md")
    parser.addsetting("metrics", type="list", default=[], check=check_names,
                      help="objective = \"lexicographic\": the metrics in order of importance, the metric setting "
                           "first (each in its direction, see directions)")
    parser.addsetting("directions", type="table", default={}, check=check_directions,
                      help="each metric's direction when it is not the direction setting's: dup_pct = \"minimize\" "
                           "(a table)")
    parser.addsetting("weights", type="numbers", default={}, check=check_weights,
                      help="objective = \"weighted\": a weight per metric, on its change divided by its noise: "
                           "yield = 1.0, dup_pct = -0.5 (positive: higher is better; negative: lower is)")


@hookimpl
def autoresearch_preflight(config) -> None:
    """The objective's settings agree with each other, or one line says what to change."""
    from autoresearch.errors import UsageError
    from autoresearch.loop import resolve_workers

    problem = Objective.of(config).problem()
    if problem:
        raise UsageError(f"{config.rootdir / 'pyproject.toml'} [tool.autoresearch]: {problem}")
    if config.get("design") == "paired" and resolve_workers(config)[0] > 1:  # runs go to several workers at once
        raise UsageError("design = \"paired\" runs with one worker (-n 1): with several, a candidate's runs go "
                         "to several workers at once; use -n 1, or design = \"unpaired\"")


@dataclass(frozen=True)
class Rule:
    """The verdict's settings."""

    direction: str = MINIMIZE
    noise_k: float = 2.0
    repeats: int = 5
    max_repeats: int = 8
    keep_threshold: float | str = 0.005
    min_improvement: float | str = 0.0
    max_added_lines: int = 20
    confirm: int = 0  # the fewest runs a keep has (0: repeats; the benchmark's --frontier sweeps it)

    @classmethod
    def of(cls, config) -> Rule:
        return cls(direction=config.get("direction"), noise_k=config.get("noise_k"), repeats=config.get("repeats"),
                   max_repeats=max(config.get("max_repeats"), config.get("repeats")),
                   keep_threshold=config.get("keep_threshold"), min_improvement=config.get("min_improvement"),
                   max_added_lines=config.get("max_added_lines"))


@dataclass(frozen=True)
class Judgement:
    status: str  # keep, discard or again
    why: str
    e: Evidence
    outliers: tuple[int, ...] = ()  # the candidate's runs (0-based) flagged as outliers
    label: str = ""  # the metric (or weighted score) the evidence is in; "" for the metric setting
    direction: str = ""  # its direction; "" for the direction setting


def single(sigma: float | None, rule: Rule):
    """The decision on one metric's values, as objective = "metric" makes it."""
    obj = Objective(primary="", direction=rule.direction)
    return lambda vs, ref: metric_core({"": vs}, {"": ref}, {"": sigma}, obj, rule.noise_k, rule.max_repeats)


def fixed(e: Evidence, rule: Rule, reference_mean: float):
    """The decision on evidence already computed (paired differences), whatever it is asked."""
    status = sequential(e, k=rule.noise_k, max_repeats=rule.max_repeats)
    return lambda vs, ref: Core(status, why_of(status, e, rule.noise_k), e, "", rule.direction, reference_mean)


def judge(values, base, tip, sigma: float | None, net_lines: int, rule: Rule, decide=None, *,
          scale: float | None = None, paired=None) -> Judgement:
    """keep, discard or again for a candidate's values against its baseline's and the tip's.

    `base` and `tip` are the values of every run of those commits (the same when it builds on
    the tip, as by default); `sigma` the pooled noise; `net_lines` what the patch adds.

    One metric (the default): `scale` is the robust σ outliers are flagged with
    (autoresearch/noise.py; default `sigma`); a run flagged as an outlier is left out of the
    means, and a keep that rests on it waits for one more run (it stays in the data:
    Judgement.outliers). `paired`: the evidence on paired differences instead (design = "paired";
    the simulation's). `decide`: an objective over several metrics (autoresearch/objectives.py),
    when values, base and tip are tables of each metric's values: its decision, as it is.
    """
    if decide is not None:
        return _judge(values, base, tip, net_lines, rule, decide, tip is base)
    from autoresearch import noise

    scale = sigma if scale is None else scale
    same = tip is base or paired is not None
    base = noise.kept(base, noise.flags(base, scale))
    tip = base if same else noise.kept(tip, noise.flags(tip, scale))
    if paired is None:
        flagged = noise.flags(values, scale, sum(base) / len(base), len(base))
        values = noise.kept(values, flagged)
        decide = single(sigma, rule)
    else:  # the improvement of each run over the tip's run with its seed, σ that of a difference
        flagged = noise.flags(paired, scale, 0.0, 10**9)
        clean = noise.kept(paired, flagged)
        decide = fixed(Evidence(sum(clean) / len(clean), len(clean), math.inf, sigma), rule,  # type: ignore[arg-type]
                       sum(base) / len(base))
    outliers = tuple(i for i, f in enumerate(flagged) if f)
    j = _judge(values, base, tip, net_lines, rule, decide, same)
    if j.status == KEEP and outliers and outliers[-1] == len(flagged) - 1 and len(flagged) < rule.max_repeats:
        return replace(j, status=AGAIN, why=f"run {len(flagged)} is an outlier: one more run", outliers=outliers)
    return replace(j, outliers=outliers if len(outliers) < len(flagged) else ())  # those left out


def _judge(values, base, tip, net_lines: int, rule: Rule, decide, same: bool) -> Judgement:
    """The rule on the objective's decision: simplicity, thresholds, the tip, confirmation runs."""
    k = rule.noise_k
    c = decide(values, base)
    e = c.e
    z = e.z
    if net_lines < 0 and z is not None and z > -k and not c.counted:
        status, why = KEEP, "no worse within the noise, simpler code"
    else:
        status, why = c.status, c.why
    if status == KEEP and why.endswith(("beyond the noise", "better; the runs show no noise")):
        base_mean = c.reference_mean
        if e.improvement < amount(rule.min_improvement, base_mean):
            status, why = DISCARD, f"beyond the noise, but below min_improvement {rule.min_improvement}"
        elif net_lines >= rule.max_added_lines and e.improvement <= amount(rule.keep_threshold, base_mean):
            status, why = DISCARD, f"small improvement for {net_lines} added lines (limit {rule.max_added_lines})"
    if status == KEEP and not same:
        versus = decide(values, tip)
        versus_tip = KEEP if versus is None else versus.status
        if versus_tip != KEEP:
            status, why = (AGAIN if versus_tip == AGAIN else DISCARD), "better than its baseline, not than the branch tip"
    if status == KEEP and e.n < min(rule.confirm or rule.repeats, rule.max_repeats) and e.sigma and e.n_ref != math.inf:
        status, why = AGAIN, "to be confirmed"  # a keep becomes the tip: it gets `repeats` runs
    return Judgement(status, why, e, label=c.label, direction=c.direction)


def values_of(runs, metric: str) -> tuple[float, ...]:
    return tuple(r.metrics[metric] for r in runs if r.ok and metric in r.metrics)


def judge_experiment(experiment, runs, tip, final: bool = False) -> Judgement | None:
    """The judgement for a hypothesis' runs so far, or None when there is nothing to compare.

    `final`: no more runs will come (another plugin stopped them): still in the grey zone, it
    is decided on the means, as at ``max_repeats``."""
    from autoresearch import drift, pairing

    config, session = experiment.session.config, experiment.session
    metric, obj = config.get("metric"), Objective.of(config)
    scale, paired = None, None  # the robust σ outliers are flagged with: one metric's (autoresearch/noise.py)
    rule, net = Rule.of(config), experiment.lines_added - experiment.lines_removed
    if obj.kind == "metric":
        values, sigma, decide = values_of(runs, metric), session.noise(metric, values_of(runs, metric))[0], None
        base = drift.reference(session, experiment.base_commit, metric, sigma)  # since a level shift, if any
        tip_values = drift.reference(session, tip.commit, metric, sigma) if tip.commit != experiment.base_commit else base
        scale = drift.robust_scale(session, metric, values)
        paired = pairing.evidence(experiment, runs, metric, rule.direction, tip.commit, sigma, scale)
        if paired is not None:  # design = "paired": the differences, and σ of a difference
            paired, sigma, scale = paired
    else:  # every metric the objective reads, each with its own noise
        names = dict.fromkeys((*obj.counted, *obj.targets))
        values = {m: values_of(runs, m) for m in names}
        base = {m: experiment.baseline.values(m) for m in names}
        tip_values = {m: tip.values(m) for m in names} if tip.commit != experiment.base_commit else base
        sigmas = {m: session.noise(m, values[m])[0] for m in names}
        sigma, baseline = None, experiment.baseline.metrics
        decide = lambda vs, ref, r=None: core(obj, vs, ref, sigmas, (r or rule).noise_k,  # noqa: E731
                                               (r or rule).max_repeats, baseline)
    primary = values if obj.kind == "metric" else values[metric]
    if not primary or not (base if obj.kind == "metric" else base[metric]):
        return None
    if obj.kind != "metric" and not tip_values[metric]:
        tip_values = base
    j = judge(values, base, tip_values or base, sigma, net, rule, decide, scale=scale, paired=paired)
    if final and j.status == AGAIN:
        n = len(paired) if paired else len(primary)
        last = replace(rule, repeats=n, max_repeats=n)
        again = None if decide is None else (lambda vs, ref: decide(vs, ref, last))
        j = judge(values, base, tip_values or base, sigma, net, last, again, scale=scale, paired=paired)
    return j


@hookimpl
def autoresearch_experiment_rerun(experiment, runs):
    from autoresearch import drift, noise

    if getattr(experiment, "remeasure", False):  # the tip re-measured: one run, one more for an outlier
        session, metric = experiment.session, experiment.session.config.get("metric")
        values, sigma = values_of(runs, metric), session.noise(metric)[0]
        return noise.remeasure_more(drift.reference(session, experiment.base_commit, metric, sigma), values, sigma,
                                    drift.robust_scale(session, metric, values), session.config.get("repeats"))
    if experiment.hypothesis is None:  # the baseline: `repeats` runs, the first measure of the noise
        config = experiment.session.config
        columns = [values_of(runs, m) for m in Objective.of(config).counted]
        if len(columns[0]) >= 3 and all(len(set(vs)) <= 1 for vs in columns):
            return False  # a deterministic workload: more runs would measure nothing
        return len(runs) < config.get("repeats")
    j = judge_experiment(experiment, runs, experiment.session.sample(experiment.session.tip))
    return j is not None and j.status == AGAIN


@hookimpl
def autoresearch_make_verdict(experiment, metrics, runs, tip) -> Verdict:
    config = experiment.session.config
    metric = config.get("metric")
    failed = failed_verdict(runs)
    if failed is not None:
        return failed
    sigma, _ = experiment.session.noise(metric, values_of(runs, metric))
    if experiment.hypothesis is None:  # the baseline, or the tip re-measured: its own outliers flagged
        from autoresearch import drift, noise

        values = values_of(runs, metric)
        flagged = noise.flags(values, drift.robust_scale(experiment.session, metric, values))
        outliers = tuple(i for i, f in enumerate(flagged) if f)
        note = f"; run {', '.join(str(i + 1) for i in outliers)} flagged as an outlier" if outliers else ""
        what = "the tip re-measured" if getattr(experiment, "remeasure", False) else "baseline"
        if what != "baseline":
            note += drift.moved_note(experiment, values, metric, sigma)
        return Verdict(Status.KEEP, f"{what}: {metric} {metrics[metric]:.6f} in {len(runs)} run"
                       f"{'s' if len(runs) > 1 else ''}{note}", sigma=sigma, outliers=outliers)
    j = judge_experiment(experiment, runs, tip, final=True)
    if j is None:
        return Verdict(Status.DISCARD, f"discard: the baseline printed no {metric} to compare with")
    status = KEEP if j.status == KEEP else DISCARD  # still grey when the runs ran out: not beyond the noise
    base = experiment.baseline.metrics
    missed = target_rule(Objective.of(config), metrics, base, base) if status == KEEP else []
    if missed:
        status = DISCARD
        j = replace(j, why=f"better, but misses its target: {'; '.join(missed)}")
    net = experiment.lines_added - experiment.lines_removed
    delta = sign(j.direction or config.get("direction")) * j.e.improvement  # as the metric moved
    spread = f" ± {j.e.se:.2g}" if j.e.se else ""
    zs = f", {j.e.z:+.1f} SE" if j.e.z is not None and abs(j.e.z) != float("inf") else ""
    runs_text = f"{j.e.n} run{'s' if j.e.n > 1 else ''}"
    flagged = f"; run {', '.join(str(i + 1) for i in j.outliers)} flagged as an outlier, left out" if j.outliers else ""
    if j.e.n_ref == math.inf:  # design = "paired": decided on the differences
        flagged += f"; paired with {j.e.n} run{'s' if j.e.n > 1 else ''} of the tip on the same seeds"
    return Verdict(status, f"{status}: {delta:+.4f}{spread} {j.label or metric}{zs} after {runs_text}, {net:+d} lines ({j.why}"
                   f"{flagged})", sigma=sigma, z=j.e.z,
                   beyond_noise=j.e.z is not None and abs(j.e.z) >= config.get("noise_k"), outliers=j.outliers)


class BaselineTargets:
    """Once the baseline has run: the targets it misses, on the terminal (status and report show them too)."""

    def __init__(self, config) -> None:
        self.config = config

    @hookimpl(trylast=True)  # below the baseline's own line
    def autoresearch_experiment_logreport(self, report) -> None:
        if not report.is_baseline or report.status != Status.KEEP:
            return
        from autoresearch.objectives import unmet_line

        line = unmet_line(self.config, report)
        terminal = self.config.pluginmanager.get_plugin("terminal-reporter") if line else None
        if terminal is not None:
            terminal.write(line)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(BaselineTargets(config), "verdict-targets")
    if config.get("design") == "paired":
        from autoresearch.pairing import PairedRuns

        config.pluginmanager.register(PairedRuns(config), "verdict-paired")


def simulate(rule: Rule, rng, effects, sigma: float = 1.0, net_lines: int = 2) -> list[tuple[float, bool, int]]:
    """One simulated session of this rule, Gaussian noise (autoresearch/simulation.py): (effect, kept, runs) each."""
    from autoresearch.simulation import session

    return [(d.effect, d.kept, d.runs) for d in session(judge, rule, rng, effects, sigma, net_lines)]


@hookimpl
def autoresearch_verdict_simulate(config, repeats, max_repeats, noise_k, effects, rng):
    """This rule, simulated for ``autoresearch calibrate`` (in units of σ: the direction does not matter)."""
    rule = Rule(direction="minimize", noise_k=noise_k, repeats=repeats, max_repeats=max(max_repeats, repeats))
    return simulate(rule, rng, effects)
