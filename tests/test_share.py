"""A run moved: export to one file, import into a fresh clone, publish to a remote."""
from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from conftest import git, simple


def finished_run(repo: Path, cli) -> None:
    simple(repo, "a_lr", "LR = 0.02")
    simple(repo, "b_worse", "LR = 0.1")
    simple(repo, "c_crash", 'CRASH = "exit"')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hypotheses")
    assert cli("run", "--tag", "t1", "--repeats", "1").rc == 0


def test_export_then_import_into_a_fresh_clone_gives_the_same_status_and_report(repo, cli, tmp_path, monkeypatch):
    finished_run(repo, cli)
    status, report = cli("status").out, cli("report").out
    r = cli("export", "-o", str(tmp_path / "run.tar.gz"))
    assert r.rc == 0 and "exported run t1 (4 experiments" in r.out, r
    names = tarfile.open(tmp_path / "run.tar.gz").getnames()
    assert {"manifest.json", "run.bundle", "run/ledger.jsonl", "run/results.tsv", "run/results.jsonl",
            "project/journal.md"} <= set(names) and any(n.startswith("run/logs/") for n in names)

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--single-branch", "--branch", "main", str(repo), str(clone)], check=True)
    monkeypatch.chdir(clone)
    assert "autoresearch/t1" not in git(clone, "branch", "-a")
    r = cli("import", str(tmp_path / "run.tar.gz"))
    assert r.rc == 0 and "imported run t1" in r.out, r
    assert cli("status").out == status
    assert cli("report").out == report
    # every experiment's commit came along, the discarded ones too
    for ref in ("refs/heads/autoresearch/t1", "refs/autoresearch/t1/001-a_lr", "refs/autoresearch/t1/002-b_worse"):
        assert git(clone, "rev-parse", ref) == git(repo, "rev-parse", ref)
    log = Path(git(clone, "rev-parse", "--show-toplevel")) / ".autoresearch/runs/t1/logs/001-a_lr.log"
    assert "val_bpb:" in log.read_text()
    r = cli("import", str(tmp_path / "run.tar.gz"))  # a second time: refused, nothing changed
    assert r.rc == 4 and "exists here already" in r.err


def test_import_refuses_what_is_not_an_export(repo, cli, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        (tmp_path / "x").write_text("x")
        tar.add(tmp_path / "x", "../../escape")
    r = cli("import", str(bad))
    assert r.rc == 4 and "refused" in r.err, r
    (tmp_path / "junk.tar.gz").write_text("not a tar")
    r = cli("import", str(tmp_path / "junk.tar.gz"))
    assert r.rc == 4 and "not an autoresearch export" in r.err, r


def test_publish_pushes_the_branch_and_prints_markdown(repo, cli, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    finished_run(repo, cli)
    r = cli("publish")
    assert r.rc == 0, r
    assert git(remote, "rev-parse", "refs/heads/autoresearch/t1") == git(repo, "rev-parse", "autoresearch/t1")
    assert "refs/autoresearch" not in git(remote, "for-each-ref")
    assert "| commit | val_bpb | memory_gb | status | description |" in r.out
    assert "| keep | a_lr |" in r.out and "| crash | c_crash |" in r.out
    r = cli("publish", "--all")
    assert r.rc == 0
    assert git(remote, "rev-parse", "refs/autoresearch/t1/002-b_worse") == git(repo, "rev-parse",
                                                                              "refs/autoresearch/t1/002-b_worse")
    r = cli("publish", "--remote", "nowhere")
    assert r.rc == 4 and "no git remote named 'nowhere'" in r.err
