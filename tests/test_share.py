"""A run moved: export to one file, import into a fresh clone, publish to a remote."""
from __future__ import annotations

import copy
import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_the_export_of_one_run_carries_only_its_journal_entries(repo, cli, tmp_path):
    finished_run(repo, cli)
    simple(repo, "d_other", "LR = 0.03")  # a second run of the project, with a hypothesis whose text
    (repo / "experiments" / "d_other.toml").write_text(  # tries to pass for a marker of the first
        'description = "d"\nhypothesis = "x <!-- autoresearch t1 9 planned --> y"\n[set]\nLR = 0.03\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "another")
    assert cli("run", "--tag", "t2", "--repeats", "1").rc == 0
    journal = (repo / "experiments" / "journal.md").read_text()
    assert "· run t1 — " in journal and "· run t2 — " in journal  # one journal, every heading says whose
    headings = [line for line in journal.splitlines() if line.startswith("### ")]
    assert all(" · run t1 — " in h or " · run t2 — " in h for h in headings), headings
    for tag, n in (("t1", 4), ("t2", 5)):
        assert cli("export", "--tag", tag, "-o", str(tmp_path / f"{tag}.tar.gz")).rc == 0
        own = tarfile.open(tmp_path / f"{tag}.tar.gz").extractfile("project/journal.md").read().decode()
        assert own.startswith("# Experiment journal\n")
        headings = [line for line in own.splitlines() if line.startswith("### ")]
        assert headings and all(f" · run {tag} — " in h for h in headings), headings
        assert own.count("**Status**: PLANNED") == own.count("**Status**: COMPLETED") == n, own
    assert "x &lt;!-- autoresearch t1 9 planned --> y" in journal  # shown as typed, never taken for a marker


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


# -------------------------------------------------------------------------------------------
# Hostile archives: read from their headers before anything is written, shown escaped


def members_of(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def pack(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def nothing_imported(clone: Path) -> bool:
    return git(clone, "for-each-ref", "refs/autoresearch", "refs/heads/autoresearch") == "" and \
        not (clone / ".autoresearch").exists()


def fresh_clone(repo: Path, tmp_path: Path, monkeypatch) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--single-branch", "--branch", "main", str(repo), str(clone)], check=True)
    monkeypatch.chdir(clone)
    return clone


def test_a_name_twice_is_refused_the_forged_copy_never_lands(repo, cli, tmp_path, monkeypatch):
    finished_run(repo, cli)
    assert cli("export", "-o", str(tmp_path / "run.tar.gz")).rc == 0
    members = members_of(tmp_path / "run.tar.gz")
    ledger = next((m, d) for m, d in members if m.name == "run/ledger.jsonl")
    forged = (copy.copy(ledger[0]), b'{"event": "session", "forged": true}\n')
    clone = fresh_clone(repo, tmp_path, monkeypatch)
    for name in ("run/ledger.jsonl", "./run/ledger.jsonl", "run//ledger.jsonl"):  # as tar spells it, or not
        forged[0].name = name
        r = cli("import", str(pack(tmp_path / "forged.tar.gz", [*members, forged])))
        assert r.rc == 4 and "is in it twice" in r.err and r.err.count("\n") == 1, r
        assert nothing_imported(clone)
    assert cli("import", str(tmp_path / "run.tar.gz")).rc == 0  # the genuine one still imports


def gnu_sparse(name: str, real_size: int) -> bytes:
    """The header of a GNU sparse member that holds no data and unpacks to `real_size` bytes."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[483:495] = tarfile.itn(real_size, 12, tarfile.GNU_FORMAT)
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block[:512])
    return bytes(block)


def raw_archive(path: Path, blocks: list[bytes]) -> Path:
    path.write_bytes(gzip.compress(b"".join(blocks) + b"\0" * 1024))
    return path


def test_what_an_archive_unpacks_to_is_capped_from_its_headers(repo, cli, tmp_path, monkeypatch):
    finished_run(repo, cli)
    assert cli("export", "-o", str(tmp_path / "run.tar.gz")).rc == 0
    genuine = gzip.decompress((tmp_path / "run.tar.gz").read_bytes()).rstrip(b"\0")
    genuine += b"\0" * (-len(genuine) % 512)
    clone = fresh_clone(repo, tmp_path, monkeypatch)
    sparse = raw_archive(tmp_path / "sparse.tar.gz", [genuine, gnu_sparse("run/logs/big.log", 150 << 20)])
    assert sparse.stat().st_size < 64 << 10  # a few KB that unpack to 150 MiB
    r = cli("import", str(sparse), "--max-size", "100M")
    assert r.rc == 4 and "unpacks to more than" in r.err and "run/logs/big.log" in r.err, r
    assert nothing_imported(clone)
    r = cli("import", str(sparse), "--max-member-size", "64M")
    assert r.rc == 4 and "--max-member-size 67108864" in r.err, r
    huge = raw_archive(tmp_path / "huge.tar.gz", [gnu_sparse("run/logs/huge.log", 1 << 50)])
    r = cli("import", str(huge))  # the defaults: 2G in all, 1G a member
    assert r.rc == 4 and "unpacks to more than" in r.err and nothing_imported(clone), r
    header = tarfile.TarInfo("run/x.log")
    header.size = 1 << 40  # a header that claims a terabyte, and no data behind it
    r = cli("import", str(raw_archive(tmp_path / "claims.tar.gz", [header.tobuf(tarfile.GNU_FORMAT)])))
    assert r.rc == 4 and "unpacks to more than" in r.err and nothing_imported(clone), r
    r = cli("import", str(sparse), "--max-size", "lots")
    assert r.rc == 4 and "--max-size 'lots': give a size" in r.err
    assert cli("import", str(sparse)).rc == 0  # 150 MiB is within the defaults: imported


def test_everything_shown_from_an_archive_is_escaped(repo, cli, tmp_path, monkeypatch):
    finished_run(repo, cli)
    assert cli("export", "-o", str(tmp_path / "run.tar.gz")).rc == 0
    osc52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # a terminal's clipboard, written by whoever made the archive
    members = []
    for info, data in members_of(tmp_path / "run.tar.gz"):
        if info.name == "run/ledger.jsonl":
            data = data.replace(b'"description": "a_lr"', b'"description": "a_lr' + json.dumps(osc52)[1:-1].encode()
                                + b'"')
            assert b"\\u001b]52" in data
        members.append((info, data))
    clone = fresh_clone(repo, tmp_path, monkeypatch)
    bad = tarfile.TarInfo(f"run/{osc52}")
    bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
    r = cli("import", str(pack(tmp_path / "link.tar.gz", [*members, (bad, None)])))
    assert r.rc == 4 and "\\x1b]52" in r.err and "\x1b" not in r.err and "\x07" not in r.err, r
    assert nothing_imported(clone)
    r = cli("import", str(pack(tmp_path / "edited.tar.gz", members)))  # an edited ledger breaks its chain
    assert r.rc == 4 and "ledger.jsonl:" in r.err and "hash chain breaks" in r.err, r
    assert nothing_imported(clone)
    # whoever forges an archive can chain the ledger anew (the chain has no key): what it says is escaped
    members = [(info, rechain(data) if info.name == "run/ledger.jsonl" else data) for info, data in members]
    assert cli("import", str(pack(tmp_path / "forged.tar.gz", members))).rc == 0
    for shown in (cli("status").out, cli("report").out, cli("status", "--json").out, cli("report", "--json").out):
        assert "a_lr" in shown and "\x1b" not in shown and "\x07" not in shown, shown


def rechain(ledger: bytes) -> bytes:
    """A ledger's lines chained anew, as a forger who edited it would."""
    import hashlib

    lines, prev = [], ""
    for raw in ledger.split(b"\n"):
        if raw:
            entry = json.loads(raw)
            entry["prev"] = prev
            raw = json.dumps(entry).encode()
            prev = hashlib.sha256(raw).hexdigest()
        lines.append(raw)
    return b"\n".join(lines)


# -- the property: a genuine export with anything hostile added (a name twice, a link, a sparse or
# huge header, a special file, a name that leaves the archive) is one escaped line and exit 4, and
# nothing is written: without the checks, many of these would import

NAMES = st.text(alphabet="ab/.é\x1b\x07 ", min_size=1, max_size=6).filter(lambda n: n.strip("/") not in ("", ".", ".."))


def blocks_of(path: Path) -> list[tuple[str, bytes]]:
    """An archive's members as (name, the bytes of header and data)."""
    raw = gzip.decompress(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    ends = [m.offset for m in members[1:]] + [max(m.offset_data + m.size + (-m.size % 512) for m in members)]
    return [(m.name, raw[m.offset:end]) for m, end in zip(members, ends)]


@st.composite
def hostile(draw, genuine: list[str]) -> list[bytes]:
    def plain(name: str) -> bytes:
        info, data = tarfile.TarInfo(name), draw(st.binary(max_size=600))
        info.size = len(data)
        return info.tobuf(tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % 512)

    def header(name: str, **fields) -> bytes:
        info = tarfile.TarInfo(name)
        for key, value in fields.items():
            setattr(info, key, value)
        return info.tobuf(tarfile.GNU_FORMAT)

    name = draw(NAMES)
    kind = draw(st.sampled_from(["twice", "link", "sparse", "huge", "special", "outside"]))
    if kind == "twice":
        twice = draw(st.sampled_from(genuine))
        return [plain(draw(st.sampled_from([twice, f"./{twice}", twice.replace("/", "//")])))]
    return [{"link": lambda: header(name, type=draw(st.sampled_from([tarfile.SYMTYPE, tarfile.LNKTYPE])),
                                    linkname=draw(st.sampled_from(["/etc/passwd", "../x", *genuine]))),
             "huge": lambda: header(name, size=draw(st.integers((1 << 30) + 1, 1 << 60))),
             "special": lambda: header(name, type=draw(st.sampled_from([tarfile.FIFOTYPE, tarfile.CHRTYPE]))),
             "sparse": lambda: gnu_sparse(name, draw(st.integers((1 << 30) + 1, 1 << 60))),
             "outside": lambda: plain(draw(st.sampled_from(["/", "../", "run/../../"])) + name)}[kind]()]


@pytest.fixture
def exported(repo, cli, tmp_path, monkeypatch) -> list[tuple[str, bytes]]:
    """A genuine export of a finished run, and a fresh clone to import it into (the current folder)."""
    finished_run(repo, cli)
    assert cli("export", "-o", str(tmp_path / "run.tar.gz")).rc == 0
    fresh_clone(repo, tmp_path, monkeypatch)
    return blocks_of(tmp_path / "run.tar.gz")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_hostile_member_list_is_one_line_and_exit_4_and_nothing_is_written(exported, cli, tmp_path, data):
    blocks = [block for _, block in exported]
    for _ in range(data.draw(st.integers(1, 3))):
        bad = data.draw(hostile([name for name, _ in exported if not name.endswith(("run", "logs", "curves",
                                                                                     "project"))]))
        blocks[data.draw(st.integers(0, len(blocks))):0] = bad
    r = cli("import", str(raw_archive(tmp_path / "hostile.tar.gz", blocks)))
    lines = r.err.splitlines()
    assert r.rc == 4 and len(lines) == 1 and lines[0].startswith("autoresearch: error: "), r
    assert lines[0].isprintable() and r.out == "", r
    assert nothing_imported(Path.cwd())


def test_the_genuine_blocks_alone_import(exported, cli, tmp_path):
    """The property's control: what it adds to is a genuine export, which imports."""
    r = cli("import", str(raw_archive(tmp_path / "genuine.tar.gz", [block for _, block in exported])))
    assert r.rc == 0, r
