"""cost_budget with -n N: an experiment starts beside others only while the budget can pay for all of
them, and before the baseline has ever run (no run time to estimate from) one at a time."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

from autoresearch import cost
from autoresearch.reports import Report, RunResult
from conftest import git, simple


def configure(repo, extra: str) -> None:
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + extra)
    git(repo, "commit", "-qam", "settings")


def cpu_workload(repo, sleep: float) -> None:
    train = (repo / "train.py").read_text().replace('print("---")', 'print("---")\nprint("device: cpu")')
    (repo / "train.py").write_text(train.replace("SLEEP = 0.0", f"SLEEP = {sleep}"))
    git(repo, "commit", "-qam", "cpu")


def events(repo, tag: str = "t1") -> list[dict]:
    path = repo / ".autoresearch" / "runs" / tag / "ledger.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] in ("start", "done")]


def most_in_flight(evs: list[dict]) -> int:
    inflight, most = set(), 0
    for e in evs:
        if e["event"] == "start":
            inflight.add(e["seq"])
        else:
            inflight.discard(e["report"]["seq"])
        most = max(most, len(inflight))
    return most


def test_with_two_workers_a_budget_runs_the_never_run_baseline_alone(repo, cli):
    cpu_workload(repo, 0.3)
    configure(repo, "repeats = 1\ncost_per_hour_cpu = 3600\ncost_budget = 0.2\n")  # $1 a second: the baseline spends it
    for i in range(4):
        simple(repo, f"h{i}", f"LR = 0.0{i + 2}")
    r = cli("run", "--tag", "t1", "-n", "2")
    assert r.rc == 1 and "stopped: cost budget spent: $" in r.err, r
    evs = events(repo)
    # nothing started beside the baseline: no run time was known to price a second experiment with, so
    # nothing was started only to be interrupted (as -n 1, the budget is passed by at most one experiment)
    assert [e["event"] for e in evs] == ["start", "done"] and evs[1]["report"]["name"] == "baseline"
    said = float(re.search(r"spent: \$([0-9.]+) of", r.err).group(1))
    data = json.loads(cli("status", "--json").out)["cost"]
    assert abs(data["dollars"] - said) < 0.006, (data, r.err)  # what the stop said is what the run cost


def test_with_two_workers_and_room_in_the_budget_two_run_at_once_after_the_baseline(repo, cli):
    cpu_workload(repo, 1.5)  # long enough that the second starts while the first runs, even on a loaded machine
    configure(repo, "repeats = 1\ncost_per_hour_cpu = 0.01\ncost_budget = 1000\n")
    for i in range(4):
        simple(repo, f"h{i}", f"DEPTH = {i + 5}")
    r = cli("run", "--tag", "t1", "-n", "2")
    assert r.rc == 0, r
    evs = events(repo)
    assert [e["event"] for e in evs[:2]] == ["start", "done"]  # the baseline alone: it gives the run time
    # two at once (the scheduler may start up to 2N ahead of the next decision, never more)
    assert 2 <= most_in_flight(evs) <= 4 and len([e for e in evs if e["event"] == "done"]) == 5


def report(seq: int, seconds: float) -> Report:
    runs = (RunResult(0, seconds, "", device="cpu", metrics={"val_bpb": 1.0}),) if seconds else ()
    return Report(seq=seq, tag="t", nodeid=f"n{seq}", name=f"n{seq}", key="", description="", hypothesis="",
                  status="keep", reason="", metric="val_bpb", direction="minimize", metrics={}, runs=runs,
                  duration=seconds)


def test_hold_counts_each_experiment_in_flight_at_the_mean_cost_so_far(monkeypatch):
    monkeypatch.setattr(cost, "compute_unit", lambda config: cost.CPU)
    settings = {"cost_budget": 10.0, "cost_per_hour_cpu": 3600.0, "gpus": 1}
    config = SimpleNamespace(get=lambda name, default=None: settings.get(name, default))
    assert cost.hold(config, [], 0) is None  # nothing in flight: one may always start
    assert "nothing has run yet" in cost.hold(config, [], 1)  # the baseline in flight, no run time known
    done = [report(0, 2.0), report(1, 2.0)]  # $2 each: $4 used
    assert cost.hold(config, done, 2) is None  # 4 + 2 in flight * 2 + 2 = 10: it fits
    assert "one more would pass $10" in cost.hold(config, done, 3)  # 4 + 3 * 2 + 2 = 12
    settings["cost_per_hour_cpu"] = None  # no price: the budget can never be spent, nothing is held
    assert cost.hold(config, done, 3) is None
    settings["cost_budget"] = None
    assert cost.hold(config, [], 5) is None
