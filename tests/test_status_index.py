"""``status`` reads what the ledger says from the run's index (autoresearch/runindex.py) when the
index matches the ledger, settings and code of now, and replays the ledger otherwise: the output is
the same either way; a stale, edited or foreign index is never believed; an index is never written
for a ledger that changed while it was made."""
from __future__ import annotations

import json

from autoresearch import runindex
from autoresearch.commands import status as status_command
from autoresearch.ledger import Ledger
from conftest import simple


def index_of(repo):
    return repo / ".autoresearch" / "runs" / "t1" / "index-status.json"


def replays(monkeypatch):
    """Count the ledger replays status makes from now on."""
    calls = []
    real = status_command.recorded

    def counted(config, tag):
        calls.append(tag)
        return real(config, tag)

    monkeypatch.setattr(status_command, "recorded", counted)
    return calls


def test_status_from_the_index_equals_status_from_the_ledger(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "LR = 0.05")
    assert cli("run", "--tag", "t1").rc == 0
    index_of(repo).unlink(missing_ok=True)
    calls = replays(monkeypatch)
    text, data = cli("status").out, cli("status", "--json").out
    assert calls == [None] and index_of(repo).is_file()  # replayed once, then read from the index
    assert cli("status").out == text and cli("status", "--json").out == data and calls == [None]
    assert json.loads(data)["experiments"][1]["description"] == "a" and "  #1   keep" in text
    simple(repo, "c", "LR = 0.04")  # the queue is live: read now, never from the index
    assert "experiments/c.toml::c" in cli("status").out and calls == [None]


def test_a_stale_or_edited_index_is_not_believed(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    text = cli("status").out
    index = index_of(repo)
    head, body = index.read_text().split("\n", 1)
    calls = replays(monkeypatch)
    index.write_text(head + "\n" + body.replace('"description": "a"', '"description": "forged"'))
    assert cli("status").out == text and calls == [None]  # edited: replayed, and written again
    assert "forged" not in index.read_text()
    old = index.read_text()
    simple(repo, "b", "LR = 0.05")
    assert cli("run", "--tag", "t1", "--resume").rc == 0  # the ledger grew: the index is stale
    index.write_text(old)
    out = cli("status").out
    assert "  #2 " in out.split("last results:")[1] and len(calls) == 2, out
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "noise_k = 3.0\n")
    cli("status")
    assert len(calls) == 3  # another setting: made again


def test_no_index_is_written_for_a_ledger_that_changed_meanwhile(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    index_of(repo).unlink(missing_ok=True)
    real = status_command.recorded

    def appended_meanwhile(config, tag):
        data = real(config, tag)
        Ledger(repo / ".autoresearch" / "runs" / "t1" / "ledger.jsonl").append({"event": "logged", "seq": 99})
        return data

    monkeypatch.setattr(status_command, "recorded", appended_meanwhile)
    assert cli("status").rc == 0
    assert not index_of(repo).exists()


def test_a_tag_that_is_not_a_plain_name_takes_the_full_path(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    r = cli("status", "--tag", "../t1")
    assert r.rc == 4 and "--tag '../t1'" in r.err and runindex.run_dir(None, "../t1") is None
