"""Bookkeeping in constant time per experiment (issue #26): the session's index answers as the
history did, the queue is not sorted again for every experiment, the ledger is read once per
session, and results.tsv / results.jsonl gain one row per experiment (written whole only when a
session starts, or when a file is not as the runner left it). Operations are counted, never timed.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from autoresearch import drift, noise, stats
from autoresearch.errors import PatchError
from autoresearch.history import Index
from autoresearch.ledger import Ledger
from autoresearch.plugins import results_tsv
from autoresearch.reports import Report, RunResult, Status, results
from autoresearch.session import Session, reruns
from conftest import simple

COMMITS = [c * 40 for c in "abcdef"]


def run_dir(repo: Path, tag: str) -> Path:
    return repo / ".autoresearch" / "runs" / tag


class Options:
    """What a Session reads of its configuration, without a project."""

    def __init__(self, state_dir: Path, rerun: tuple[str, ...] = ()) -> None:
        self.state_dir, self.rerun, self.protected = state_dir, rerun, []

    def getoption(self, name: str):
        return {"tag": "t", "rerun": self.rerun}.get(name)

    def get(self, name: str, default=None):
        return default


class Unwritten(Session):
    """A session whose ledger appends go nowhere: the index alone is under test."""

    @property
    def ledger(self):
        return SimpleNamespace(append=lambda entry, sync=True: None)


def make_report(seq: int, commit: str, key: str, status: Status, values: list[float], name: str = "") -> Report:
    runs = tuple(RunResult(0, 1.0, f"/l/{seq}.{i}.log", metrics={"m": v}) for i, v in enumerate(values))
    if status in (Status.CRASH, Status.INTERRUPTED):
        runs += (RunResult(1, 1.0, f"/l/{seq}.x.log"),)
    return Report(seq=seq, tag="t", nodeid=name or key or "baseline", name=name or key or "baseline", key=key,
                  description="d", hypothesis="h", status=status, reason="r", metric="m", direction="minimize",
                  metrics={"m": sum(values) / len(values)} if values else {}, commit=commit, runs=runs)


# the history as it was kept before the index: every question a walk of the whole list

def walk_reports_of(history, commit):
    return [r for r in history if r.commit and commit and (r.commit.startswith(commit) or commit.startswith(r.commit))]


def walk_done_keys(history, words):
    latest = {r.key: r for r in history if r.status != Status.INTERRUPTED and r.key}
    return {key for key, r in latest.items() if not reruns(r, words)}


def walk_named(history, name):
    named = [r for r in history if r.name == name and r.status != Status.INTERRUPTED]
    return named[-1] if named else None


reports_strategy = st.lists(st.tuples(
    st.integers(0, 3),  # how far back its number goes: 0 is a new number, more replaces an earlier one
    st.sampled_from(COMMITS + ["", "abc1234"]),  # a short id now and then (an old ledger)
    st.sampled_from(["", "k1", "k2", "k3"]),
    st.sampled_from(list(Status)),
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=0, max_size=4),
    st.sampled_from(["", "a", "b"])), max_size=25)


@settings(max_examples=60, deadline=None)
@given(reports_strategy, st.sampled_from([(), ("crashed",), ("inconclusive", "crashed")]))
def test_the_index_answers_as_a_walk_of_the_history(specs, words):
    session = Unwritten(Options(Path(tempfile.gettempdir()), words))
    seq = 0
    for back, commit, key, status, values, name in specs:
        number = seq if back == 0 or not session.history else session.history[-min(back, len(session.history))].seq
        seq += back == 0
        session.record_done(make_report(number, commit, key, status, values, name))
        history = session.history
        assert [r.seq for r in history] == sorted({r.seq for r in history})
        for c in [*COMMITS, "", "abc1234", "abc1234" + "0" * 33, "ab"]:
            assert session.reports_of(c) == walk_reports_of(history, c)
            assert session.count_runs(c) == sum(len(r.runs) for r in walk_reports_of(history, c))
        assert session.done_keys() == walk_done_keys(history, words)
        assert session.baseline_done == any(r.is_baseline and r.status == Status.KEEP for r in history)
        for extra in [(), (1.0, 2.5)]:
            assert session.noise("m", extra) == stats.pooled_over(history, "m", extra, 40)
            assert noise.robust_sigma(session.groups("m", extra)) == noise.robust_sigma(drift.groups(history, "m", extra))
        for name in ["a", "b", "baseline"] if session.tip else []:
            expected = walk_named(history, name)
            if expected is not None and expected.status != Status.CRASH:
                assert session.resolve_base(SimpleNamespace(baseline=name)) == expected.commit
            else:  # crashed, or never run: nothing to build on
                with pytest.raises(PatchError):
                    session.resolve_base(SimpleNamespace(baseline=name))
        assert session.seq_for("new") == max([r.seq for r in history], default=-1) + 1
        session.numbered.clear()
        # a fresh index of the same history holds the same
        fresh = Index(history)
        assert fresh.by_commit == session.index.by_commit and fresh.latest_by_key == session.index.latest_by_key


class Counted:
    """A hypothesis whose key counts how often it is read."""

    reads = 0

    def __init__(self, key: str) -> None:
        self._key = key

    @property
    def key(self) -> str:
        Counted.reads += 1
        return self._key


def walk_order(items, pending, dispatched):
    first = {e["key"]: e["seq"] for e in pending}
    return [h for h in sorted(items, key=lambda h: (h.key not in first, first.get(h.key, 0))) if h.key not in dispatched]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.lists(st.integers(0, 40), max_size=6, unique=True), st.integers(0, 5))
def test_the_queue_gives_what_a_sorted_walk_gave(n, pending_at, more_at):
    session = Unwritten(Options(Path(tempfile.gettempdir())))
    session.items = [Counted(f"k{i}") for i in range(n)]
    session.pending = [{"seq": 100 - i, "key": f"k{i}"} for i in pending_at]
    session.config = SimpleNamespace(getoption=lambda name: None, hook=SimpleNamespace(
        autoresearch_queue_empty=lambda session: []))
    got, added = [], False
    while True:
        expected = walk_order(session.items, session.pending, session.dispatched)
        h = session.next_item()
        assert h is (expected[0] if expected else None)
        if h is None:
            if added:
                break
            session.items += [Counted(f"late{i}") for i in range(more_at)]  # --watch found more
            added = True
            continue
        got.append(h.key)
        session.seq_for(h.key)  # the experiment takes its number: a pending one leaves the pending list
    assert len(got) == len(set(got)) == n + more_at


def test_the_queue_reads_each_key_a_bounded_number_of_times():
    """1,000 hypotheses drained: each key read four times, not once per experiment (no sort per call)."""
    session = Unwritten(Options(Path(tempfile.gettempdir())))
    session.items = [Counted(f"k{i}") for i in range(1000)]
    Counted.reads = 0
    while session.next_item() is not None:
        pass
    assert Counted.reads <= 5 * 1000  # a sort (twice each), then a look (twice): a walk per call read 500,000


def test_a_run_reads_the_ledger_once_and_appends_its_rows(repo, cli, monkeypatch):
    """Whatever the number of hypotheses: the ledger read once, results.tsv and results.jsonl
    written whole once (at the session's start), then one appended row per experiment."""
    counts: dict[str, int] = {}

    def counting(name, real):
        def wrapper(*args, **kw):
            counts[name] = counts.get(name, 0) + 1
            return real(*args, **kw)
        return wrapper

    whole: list[str] = []
    real_write = results_tsv.atomic_write
    monkeypatch.setattr(Ledger, "replay", counting("replay", Ledger.replay))
    monkeypatch.setattr(results_tsv, "atomic_write", lambda path, text: (whole.append(path.name), real_write(path, text)))
    seen = {}
    for n, tag in ((2, "small"), (6, "large")):
        for i in range(n):
            simple(repo, f"{tag}{i}", f"LR = {0.001 * (i + 1):.3f}")
        counts.clear()
        whole.clear()
        r = cli("run", "--tag", tag, "-q", "-k", tag)
        assert r.rc == 0, r
        seen[n] = (dict(counts), sorted(whole))
        folder = run_dir(repo, tag)
        reports = results(Ledger(folder / "ledger.jsonl").replay().history)
        lines = (folder / "results.jsonl").read_text().splitlines()
        assert [json.loads(x)["seq"] for x in lines] == [r.seq for r in reports]
        assert (folder / "results.tsv").read_text() == results_tsv.render("val_bpb", reports)
        assert (repo / "results.tsv").read_text() == results_tsv.render("val_bpb", reports)
    assert seen[2] == seen[6], seen  # the same reads and whole writes, whatever the number of experiments
    assert seen[6][0].get("replay", 0) <= 1
    assert seen[6][1] == ["results.jsonl", "results.tsv", "results.tsv"]  # at the start, once


def test_a_damaged_sidecar_is_written_whole_on_resume(repo, cli):
    for i in range(3):
        simple(repo, f"h{i}", f"LR = {0.001 * (i + 1):.3f}")
    assert cli("run", "--tag", "t1", "-q").rc == 0
    sidecar = run_dir(repo, "t1") / "results.jsonl"
    good = sidecar.read_text()
    sidecar.write_text(good[: len(good) // 2])  # torn, as a full disk or an editor could leave it
    simple(repo, "h9", "LR = 0.0095")
    assert cli("run", "--tag", "t1", "--resume", "-q").rc == 0
    lines = sidecar.read_text().splitlines()
    assert sidecar.read_text().startswith(good) and len(lines) == len(good.splitlines()) + 1
    assert [json.loads(x)["seq"] for x in lines] == sorted(json.loads(x)["seq"] for x in lines)


def test_results_files_follow_the_history_through_appends_edits_and_replacements(tmp_path):
    """Rows appended, a file edited or removed between experiments, a report replaced (an
    interrupted one run again): after each, both files are what a whole render gives."""
    config = SimpleNamespace(rootdir=tmp_path, get={"results_path": "mirror.tsv", "memory_metric": "peak_vram_mb",
                                                    "metric": "m"}.get)
    session = SimpleNamespace(run_dir=tmp_path / "run", history=[])
    session.run_dir.mkdir()
    writer = results_tsv.ResultsTSV(config)
    writer.autoresearch_sessionstart(session)

    def check() -> None:
        reports = results(session.history)
        text = results_tsv.render("m", reports)
        assert (session.run_dir / "results.tsv").read_text() == text == (tmp_path / "mirror.tsv").read_text()
        assert [json.loads(x)["seq"] for x in (session.run_dir / "results.jsonl").read_text().splitlines()] == \
            [r.seq for r in reports]

    def record(report: Report) -> None:
        session.history = sorted([r for r in session.history if r.seq != report.seq] + [report], key=lambda r: r.seq)
        writer.autoresearch_experiment_logreport(report)
        check()

    record(make_report(0, COMMITS[0], "", Status.KEEP, [1.0]))
    record(make_report(1, COMMITS[1], "k1", Status.DISCARD, [1.2]))
    record(make_report(2, COMMITS[2], "k2", Status.INTERRUPTED, []))
    record(make_report(3, COMMITS[3], "k3", Status.CRASH, []))
    assert writer.flushes == 1  # appends only, since the start
    (tmp_path / "mirror.tsv").write_text("edited by hand\n")
    record(make_report(4, COMMITS[4], "k4", Status.KEEP, [0.9]))
    (session.run_dir / "results.jsonl").unlink()
    record(make_report(5, COMMITS[5], "k5", Status.DISCARD, [1.1]))
    record(make_report(2, COMMITS[2], "k2", Status.DISCARD, [1.3]))  # the interrupted one, run again
    assert writer.flushes == 4
    record(make_report(6, COMMITS[0], "k6", Status.DISCARD, [1.1]))
    assert writer.flushes == 4


def test_a_failed_append_leaves_no_torn_row(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"row 1\n")
    import os
    import types

    # results_tsv's own `os` only: patching os.write itself would cut any file another thread writes
    full = types.SimpleNamespace(**vars(os))
    full.write = lambda fd, data: os.ftruncate(fd, 8) or 2  # 2 bytes written, then the disk is full
    with monkeypatch.context() as m:
        m.setattr(results_tsv, "os", full)
        assert not results_tsv.append_exactly(path, b"row 2\n", 6)
    assert path.read_bytes() == b"row 1\n"


def test_readers_on_other_threads_never_see_a_report_twice_or_not_at_all():
    """Workers' threads ask for σ and a commit's runs while the main thread records reports: the
    index they leave behind is the history's, every value once."""
    import threading

    session = Unwritten(Options(Path(tempfile.gettempdir())))
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            session.noise("m", (1.0,))
            session.groups("m")
            session.count_runs(COMMITS[0])

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for seq in range(300):
            session.record_done(make_report(seq, COMMITS[seq % 3], f"k{seq}", Status.DISCARD, [seq * 0.01, 1.0]))
    finally:
        stop.set()
        for t in readers:
            t.join()
    history = session.history
    assert session.groups("m") == [g for g in drift.groups(history, "m") if len(g) > 1] + [[]]
    assert session.noise("m") == stats.pooled_over(history, "m", (), 40)
    assert session.count_runs(COMMITS[0]) == 200


def test_an_experiment_costs_a_fixed_number_of_processes_and_fsyncs(repo, cli, monkeypatch):
    """Per experiment, whatever the run's length: two git processes (reset, commit: the run's ref is
    written without one, the run's files derived from the base's without git archive), one launcher,
    one fsync of the ledger (its commit point) and one of the journal (its COMPLETED entry, which
    takes the PLANNED one with it). Counted, not timed."""
    import os
    import subprocess

    started: list[list[str]] = []
    synced: list[str] = []
    real_init, real_fsync = subprocess.Popen.__init__, os.fsync

    def init(popen, args, *a, **kw):
        started.append([str(x) for x in args])
        return real_init(popen, args, *a, **kw)

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
    monkeypatch.setattr(os, "fsync", fsync)
    seen = {}
    for n, tag in ((2, "small"), (5, "large")):
        for i in range(n):  # every one worse than the baseline (LR 0.01): discarded, the tip never moves
            simple(repo, f"{tag}{i}", f"LR = {0.001 + 0.0001 * i:.4f}")
        started.clear()
        synced.clear()
        assert cli("run", "--tag", tag, "-q", "-k", tag).rc == 0
        gits = [next(a for a in argv[1:] if not a.startswith("-") and "=" not in a) for argv in started
                if os.path.basename(argv[0]) == "git"]
        launchers = [argv for argv in started if "-I" in argv and "train.py" in argv]  # not the sandbox's probe
        seen[n] = ({c: gits.count(c) for c in set(gits)}, len(launchers),
                   {f: synced.count(f) for f in set(synced)})
    per = {c: seen[5][0].get(c, 0) - seen[2][0].get(c, 0) for c in set(seen[5][0]) | set(seen[2][0])}
    assert {c: k for c, k in per.items() if k} == {"reset": 3, "commit": 3}, seen
    assert seen[5][1] - seen[2][1] == 3, seen
    assert {f: seen[5][2].get(f, 0) - seen[2][2].get(f, 0) for f in seen[5][2]} == {"ledger.jsonl": 3, "journal.md": 3}, seen


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="ab1.-_/@{}~^:*? \\", min_size=1, max_size=10))
def test_a_run_ref_is_written_as_git_writes_it_or_left_to_git(tmp_path_factory, suffix):
    """Any name: either the ref file holds what ``git update-ref`` writes, under a name git accepts
    and reads back, or nothing is written (no ref, no lock) and git is left to do it."""
    import subprocess

    from autoresearch.repoguard import write_loose_ref
    from conftest import git

    root = tmp_path_factory.mktemp("refs")
    git(root, "init", "-q")
    git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    sha = git(root, "rev-parse", "HEAD")
    common = root / ".git"
    name = f"refs/autoresearch/t/{suffix}"
    before = sorted(str(p) for p in common.rglob("*"))
    if write_loose_ref(common, name, sha):
        assert subprocess.run(["git", "check-ref-format", name], cwd=root).returncode == 0
        assert f"{sha} {name}" in git(root, "for-each-ref", "--format=%(objectname) %(refname)").splitlines()
        assert (common / name).read_bytes() == f"{sha}\n".encode()
        assert not list(common.rglob("*.lock"))
    else:
        assert sorted(str(p) for p in common.rglob("*") if not p.is_dir()) == \
            [p for p in before if not Path(p).is_dir()], "a refused write left something behind"


def test_run_refs_are_left_to_git_where_its_config_asks_more():
    from autoresearch.repoguard import can_write_refs

    common = Path(tempfile.mkdtemp())
    (common / "refs").mkdir()
    assert can_write_refs(common, "core.logallrefupdates true\n")
    for config in ("core.logallrefupdates always", "core.sharedrepository group", "core.fsync reference",
                   "extensions.refstorage reftable"):
        assert not can_write_refs(common, config + "\n"), config
    (common / "reftable").mkdir()
    assert not can_write_refs(common, "")


OPS = st.lists(st.tuples(st.sampled_from(["edit", "chmod", "new", "link", "attributes", "same", "stowaway"]),
                         st.sampled_from(["train.py", "sub/model.py", "run.sh", "deep/er/new.py", "experiments/h.toml"]),
                         st.binary(max_size=40)), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None)
@given(OPS)
def test_a_commits_files_derived_from_its_base_are_git_archives(tmp_path_factory, ops):
    """Whatever an experiment's commit changes (contents, modes, new files in new folders, a link,
    attributes, a stowaway: a change staged with them that the runner was not told of): the files
    derived from its base's and its loose objects are exactly what git archive gives, or derivation
    refuses; plain changes are always derived."""
    import os

    from autoresearch import runfolder
    from autoresearch.gitobjects import derive
    from conftest import git

    root = tmp_path_factory.mktemp("derive")
    for name, text in (("train.py", "LR = 0.01\n"), ("sub/model.py", "x = 1\n"), ("run.sh", "#!/bin/sh\n"),
                       ("experiments/h.toml", "a = 1\n")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    os.chmod(root / "run.sh", 0o755)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "base")
    git(root, "gc", "-q")  # the base's objects packed, as in a real repository
    base = git(root, "rev-parse", "HEAD")
    paths, hidden, plain = [], [], True
    for op, name, data in ops:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if op == "link":
            if path.exists() or path.is_symlink():
                path.unlink()
            path.symlink_to("train.py" if "/" not in name else "../train.py")
            plain = False
        elif op == "attributes":
            (path.parent / ".gitattributes").write_text("* text eol=crlf\n")
            paths.append(str((path.parent / ".gitattributes").relative_to(root)))
            plain = False
        elif op == "chmod" and path.is_file() and not path.is_symlink():
            os.chmod(path, 0o755)
        elif op == "same" and path.is_file() and not path.is_symlink():
            pass
        elif op == "stowaway":
            if not path.is_symlink():
                path.write_bytes(data)
                hidden.append(name)
                plain = False
            continue  # committed, but not among the paths derive is told of
        elif not path.is_symlink():
            path.write_bytes(data)
        paths.append(name)
    paths = [p for p in dict.fromkeys(paths) if os.path.lexists(root / p)]
    git(root, "add", "--", *paths, *[h for h in hidden if os.path.lexists(root / h)])
    git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "exp")
    commit = git(root, "rev-parse", "HEAD")
    exclude = ("experiments",)

    def files(tree):
        return set(tree.folders), set(tree.files), set(tree.links)

    got = derive(root / ".git", base, runfolder.archive(root, base, exclude=exclude), commit, paths, exclude)
    if got is not None:
        assert files(got) == files(runfolder.archive(root, commit, exclude=exclude))
    else:  # refused: a link, attributes, or a commit that changes nothing (its tree is the base's, packed)
        assert not plain or git(root, "rev-parse", f"{commit}^{{tree}}") == git(root, "rev-parse", f"{base}^{{tree}}"), ops


@pytest.mark.parametrize("setup", ["reflog", "symbolic", "packed-parent", "packed-child"])
def test_a_run_ref_whose_update_git_would_do_more_for_is_left_to_git(tmp_path, setup):
    """Where ``git update-ref`` does more than write the file (appends to an existing reflog,
    follows a symbolic ref) or refuses (a packed ref is a folder of the name, or in it), the
    in-process write declines and leaves everything as it was (found in review)."""
    from autoresearch.repoguard import write_loose_ref
    from conftest import git

    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    sha = git(tmp_path, "rev-parse", "HEAD")
    common, name = tmp_path / ".git", "refs/autoresearch/t/run"
    if setup == "reflog":
        git(tmp_path, "update-ref", "--create-reflog", name, sha)
    elif setup == "symbolic":
        git(tmp_path, "symbolic-ref", name, "refs/heads/elsewhere")
    else:
        other = "refs/autoresearch/t" if setup == "packed-parent" else name + "/deeper"
        git(tmp_path, "update-ref", other, sha)
        git(tmp_path, "pack-refs", "--all")
    before = {str(p): p.read_bytes() for p in common.rglob("*") if p.is_file()}
    assert not write_loose_ref(common, name, sha)
    assert {str(p): p.read_bytes() for p in common.rglob("*") if p.is_file()} == before
