"""σ of a difference (design = "paired") comes from the ledger: a resumed session decides as an
uninterrupted one, and a verdict asked for on the way (a worker's likely keep) feeds nothing."""
from __future__ import annotations

import json
from types import SimpleNamespace

from autoresearch.pairing import PairedRuns
from autoresearch.reports import Report, RunResult, Status
from conftest import git, simple
from test_session import run_dir
from test_verdict import NOISY

# each changes the metric by a fixed amount and the seed's noise by its own share: the differences
# with the tip's run on the same seed vary from seed to seed, so σ of a difference is measured
IDEAS = {"a": "LR = 0.01005\nSEED_NOISE = 0.0016", "b": "LR = 0.01003\nSEED_NOISE = 0.0004",
         "c": "LR = 0.01008\nSEED_NOISE = 0.0019", "d": "LR = 0.01006\nSEED_NOISE = 0.0013",
         "e": "LR = 0.01009\nSEED_NOISE = 0.0008", "f": "LR = 0.01004\nSEED_NOISE = 0.0012"}


def paired_repo(repo):
    train = (repo / "train.py").read_text().replace("SEED_NOISE = 0.0", "SEED_NOISE = 0.001").replace(*NOISY)
    (repo / "train.py").write_text(train)
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + 'design = "paired"\n')
    git(repo, "commit", "-qam", "a noisy workload, paired runs")
    return repo


def verdicts(repo, tag):
    entries = [json.loads(x) for x in (run_dir(repo, tag) / "results.jsonl").read_text().splitlines()]
    return [(e["name"], e["status"], e["n"], e["reason"]) for e in entries]


def test_a_resumed_paired_session_decides_as_an_uninterrupted_one(repo, cli):
    paired_repo(repo)
    first = "abc"
    for name in first:
        simple(repo, name, IDEAS[name])
    assert cli("run", "--tag", "t1", "-q").rc == 0
    for name in IDEAS:
        if name not in first:
            simple(repo, name, IDEAS[name])
    assert cli("run", "--tag", "t1", "--resume", "-q").rc == 0
    assert cli("run", "--tag", "t2", "-q").rc == 0
    resumed, whole = verdicts(repo, "t1"), verdicts(repo, "t2")
    assert resumed == whole


def test_only_decided_candidates_feed_the_sigma_of_a_difference(tmp_path):
    """A verdict asked for on the way (a worker's likely keep, on runs that may yet be dropped) or a
    candidate still running adds nothing to σ of a difference; once decided, its differences count."""
    def run(seed, value):
        return RunResult(0, 1.0, "", seed=seed, metrics={"m": value})

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("".join(json.dumps({"event": "paired", "seq": 1, "commit": "c0", "run": run(s, 1.0).to_dict()})
                              + "\n" for s in range(3)))
    config = SimpleNamespace(get={"metric": "m", "direction": "minimize"}.get)
    session = SimpleNamespace(history=[], ledger=SimpleNamespace(path=ledger))
    plugin = PairedRuns(config)
    x, y = SimpleNamespace(seq=1, session=session), SimpleNamespace(seq=2, session=session)
    assert plugin.sigma_groups(x, [0.1, 0.3, 0.2]) == [[0.1, 0.3, 0.2]]  # likely(): x's runs so far
    assert plugin.sigma_groups(y, [0.5]) == [[0.5]]  # x is not decided: it feeds nothing
    x_runs = (run(0, 0.9), run(1, 0.7), run(2, 1.2))
    base = dict(tag="t", nodeid="x", name="x", key="k1", description="", hypothesis="", reason="", metric="m",
                direction="minimize", runs=x_runs)
    session.history.append(Report(seq=0, **{**base, "key": ""}, status=Status.KEEP))  # the baseline: no pairs
    session.history.append(Report(seq=1, **base, status=Status.DISCARD))
    groups = plugin.sigma_groups(y, [0.5])
    assert len(groups) == 2 and groups[1] == [0.5]
    assert [round(v, 6) for v in groups[0]] == [0.1, 0.3, -0.2]  # the decided runs (not likely()'s), by seed
    session.history[1] = Report(seq=1, **base, status=Status.CRASH)  # a crash decides nothing about the noise
    assert PairedRuns(config).sigma_groups(y, [0.5]) == [[0.5]]
