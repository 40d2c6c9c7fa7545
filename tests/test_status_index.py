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


def report_index(repo):
    return repo / ".autoresearch" / "runs" / "t1" / "index-report.json"


def test_report_from_the_index_equals_report_from_the_ledger(repo, cli, monkeypatch):
    from autoresearch.commands import report as report_command

    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "LR = 0.05")
    assert cli("run", "--tag", "t1").rc == 0
    made = []
    real = report_command.markdown
    monkeypatch.setattr(report_command, "markdown", lambda *a, **kw: made.append(1) or real(*a, **kw))
    first = cli("report").out
    assert made == [1] and report_index(repo).is_file()
    assert cli("report").out == first and made == [1]  # read from the index
    simple(repo, "c", "LR = 0.04")  # the queue changed: made again, and it shows
    third = cli("report").out
    assert made == [1, 1] and "experiments/c.toml::c" in third and "experiments/c.toml::c" not in first
    head, body = report_index(repo).read_text().split("\n", 1)
    report_index(repo).write_text(head + "\n" + body.replace("LR", "XX"))  # edited: not believed
    assert cli("report").out == third and made == [1, 1, 1]
    assert cli("report", "--json").rc == 0 and made == [1, 1, 1]  # --json: never the index


def test_a_report_hook_from_a_conftest_is_called_every_time(repo, cli):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    (repo / "conftest.py").write_text(
        "from pathlib import Path\nfrom autoresearch import hookimpl\nCOUNT = Path(__file__).with_name('.count')\n\n\n"
        "@hookimpl\ndef autoresearch_report_extra(config):\n"
        "    n = int(COUNT.read_text()) if COUNT.exists() else 0\n    COUNT.write_text(str(n + 1))\n"
        "    return f'## Extra {n}'\n")
    assert "## Extra 0" in cli("report").out
    assert "## Extra 1" in cli("report").out


def aged(repo, seconds=60):
    """Every file of the project last changed `seconds` ago (an index is written only for files older than 2 s)."""
    import os
    import time

    then = time.time() - seconds
    for path in [repo / "train.py", *(repo / "experiments").rglob("*")]:
        os.utime(path, (then, then))


def collections(monkeypatch):
    from autoresearch import queueindex

    calls = []
    real = queueindex.collect_now
    monkeypatch.setattr(queueindex, "collect_now", lambda *a: calls.append(1) or real(*a))
    return calls


def test_the_queue_is_read_from_its_index_while_no_file_collection_reads_changed(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    simple(repo, "b", "LR = 0.05")
    aged(repo)
    calls = collections(monkeypatch)
    first = cli("status").out
    assert "experiments/b.toml::b" in first and calls == [1]
    assert cli("status").out == first and calls == [1]  # from the index
    simple(repo, "c", "LR = 0.04")  # a new file: collected again (and too new to be kept)
    assert "experiments/c.toml::c" in cli("status").out and calls == [1, 1]
    aged(repo)
    cli("status")
    assert calls == [1, 1, 1]
    (repo / "experiments" / "c.toml").write_text((repo / "experiments" / "c.toml").read_text().replace("0.04", "0.01"))
    aged(repo, 30)  # its content and time changed: collected again, and the patch that now changes nothing shows
    out = cli("status").out
    assert calls == [1, 1, 1, 1] and "experiments/c.toml::c" in out
    (repo / "train.py").write_text((repo / "train.py").read_text().replace("LR = 0.01", "LR_ = 0.01"))
    aged(repo, 20)  # the editable file changed: every patch is checked again
    out = cli("status").out
    assert calls == [1, 1, 1, 1, 1] and "file(s) with errors" in out, out


def test_a_file_rewritten_with_its_old_time_put_back_is_collected_again(repo, cli, monkeypatch):
    """Same size, same inode, its mtime set back (touch -r, rsync -t --inplace, an editor that keeps
    times): its change time still moved, so status collects it again (found in review)."""
    import os

    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    q = simple(repo, "q", "LR = 0.03")
    aged(repo)
    calls = collections(monkeypatch)
    assert "experiments/q.toml::q" in cli("status").out and calls == [1]
    assert (repo / ".autoresearch" / "index-queue.json").is_file()
    before = os.stat(q)
    with open(q, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.replace(b"[set]", b"[sxt]"))
    os.utime(q, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = cli("status").out
    assert calls == [1, 1] and "experiments/q.toml::q" not in out and "file(s) with errors" in out, out


def test_python_hypothesis_files_are_collected_every_time(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    (repo / "experiments" / "py.py").write_text("from autoresearch import hypothesis\n\n\n@hypothesis(description='p')\n"
                                                "def p(patch):\n    '''Why.'''\n    patch.set(LR=0.04)\n")
    aged(repo)
    calls = collections(monkeypatch)
    assert "experiments/py.py::p" in cli("status").out
    assert "experiments/py.py::p" in cli("status").out
    assert calls == [1, 1] and not (repo / ".autoresearch" / "index-queue.json").exists()


def test_a_collector_from_a_conftest_makes_the_queue_be_collected_every_time(repo, cli, monkeypatch):
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    (repo / "conftest.py").write_text("from autoresearch import hookimpl\n\n\n@hookimpl\n"
                                      "def autoresearch_collect_file(file_path, config):\n    return None\n")
    simple(repo, "b", "LR = 0.05")
    aged(repo)
    calls = collections(monkeypatch)
    assert "experiments/b.toml::b" in cli("status").out and "experiments/b.toml::b" in cli("status").out
    assert calls == [1, 1] and not (repo / ".autoresearch" / "index-queue.json").exists()
