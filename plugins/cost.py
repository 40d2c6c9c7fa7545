"""cost: each run priced at the device it ran on, and ``cost_budget``, a graceful stop once it is spent.

Every run records the device its summary named (``device: cuda``, as the reference train.py
prints it); ``report`` and ``status`` price GPU runs at ``cost_per_hour`` (times ``gpus``) and CPU
runs at ``cost_per_hour_cpu`` (autoresearch/cost.py). With ``cost_budget``, once what the run has
cost reaches it the session stops after the experiment in progress, as ``-x`` stops it: every
result recorded, exit code 1 and the line ``stopped: cost budget spent: $X of $Y ...``; a
``--resume`` with the budget still spent runs nothing and says so. Raise ``cost_budget`` to go on.
With ``-n N`` an experiment starts beside others only while the budget can pay for all of them at
the mean cost of an experiment so far; before the baseline has run, one at a time
(autoresearch.cost.hold).
"""
from __future__ import annotations

from dataclasses import replace

from autoresearch import cost, hookimpl
from autoresearch.config import not_negative, positive
from autoresearch.errors import UsageError


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("cost_per_hour_cpu", "--cost-per-hour-cpu", type="float", default=None, check=not_negative,
                      group="terminal", help="price of one hour of a run on the CPU (a run whose summary says "
                                             "`device: cpu`, or any run on a machine without a GPU); "
                                             "cost_per_hour prices GPU-hours only")
    parser.addsetting("cost_budget", "--cost-budget", type="float", default=None, check=positive, group="terminal",
                      help="the most the run may cost, in the prices' currency: once spent, the session stops "
                           "after the experiment in progress (exit code 1); report and status show what is used "
                           "and what remains")


@hookimpl
def autoresearch_preflight(config) -> None:
    """A budget that could never be reached (no price for the machine's compute): one line, nothing runs."""
    if config.get("cost_budget"):
        unit = cost.compute_unit(config)
        name = "cost_per_hour" if unit == cost.GPU else "cost_per_hour_cpu"
        if config.get(name) is None:
            raise UsageError(f"cost_budget is set but {name} is not: this machine's runs ({unit}) would have no "
                             f"price, and the budget could never be spent (set {name})")


@hookimpl(wrapper=True)
def autoresearch_experiment_run(experiment):
    """Whichever executor ran it: the device its summary named, for its price."""
    result = yield
    if not result.device and result.log_path:
        device = cost.device_of(result.log_path)
        if device:
            result = replace(result, device=device)
    return result


@hookimpl
def autoresearch_dispatch_hold(session, inflight: int) -> str | None:
    """-n N: no experiment starts beside others that the budget could not pay for."""
    return cost.hold(session.config, session.history, inflight)


class Budget:
    def __init__(self, config) -> None:
        self.config = config
        self.session = None

    @hookimpl(trylast=True)
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session
        why = cost.spent(self.config, session.history)
        if why:  # resumed with the budget spent: nothing runs (the run loop looks before the baseline)
            session.shouldstop = session.shouldstop or why

    @hookimpl
    def autoresearch_experiment_logreport(self, report) -> None:
        if self.session is None:
            return
        why = cost.spent(self.config, self.session.history)
        if why:
            self.session.shouldstop = self.session.shouldstop or why


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(Budget(config), "cost-budget")
