"""Moving a run: ``export`` (one file), ``import`` (into another clone), ``publish`` (to a remote).

An export is a gzipped tar holding ``manifest.json``, ``run.bundle`` (a git bundle of the run's
branch, ``refs/heads/autoresearch/<tag>``, and every ``refs/autoresearch/<tag>/…`` ref: the kept
and the discarded experiments' commits), ``run/`` (the run's folder: the ledger, results.tsv,
results.jsonl, the logs, the learning curves) and ``project/`` (the journal and the lessons).
``import`` brings the commits and the run's folder into another clone, where ``status`` and
``report`` then show the run as they did where it ran.

An archive is read as hostile until checked, from its headers, before anything of it is written:
only plain files and folders inside it, each name once, and at most ``--max-size`` unpacked in all
and ``--max-member-size`` each (a sparse member counts at its real size). Whatever is shown from
it is escaped (:func:`autoresearch.reports.printable`).
"""
from __future__ import annotations

import gzip
import json
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

from autoresearch.errors import UsageError
from autoresearch.reports import Status, printable

FORMAT = 1
RUN_FILES = ("ledger.jsonl", "results.tsv", "results.jsonl")
RUN_DIRS = ("logs", "curves")
MAX_SIZE = "2G"  # what an archive may unpack to, in all (import --max-size)
MAX_MEMBER_SIZE = "1G"  # and each member (import --max-member-size)
HEADROOM = 64 << 20  # the archive's headers, beyond what its members unpack to
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size(text: str, flag: str) -> int:
    """A size on the command line: bytes, or with a unit K, M, G, T (powers of 1024): ``2G``, ``500M``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m or float(m.group(1)) * UNITS[m.group(2).upper()] > 1 << 60:
        raise UsageError(f"{flag} {printable(str(text))[:40]!r}: give a size in bytes, or with K, M, G or T "
                         "(e.g. 2G), at most 1024P")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        raise UsageError(f"git {' '.join(args[:3])}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout


def run_refs(root: Path, tag: str) -> list[str]:
    """The run's branch and every experiment's ref, as git names them."""
    refs = _git(root, "for-each-ref", "--format=%(refname)", f"refs/heads/autoresearch/{tag}",
                f"refs/autoresearch/{tag}/").split()
    if f"refs/heads/autoresearch/{tag}" not in refs:
        raise UsageError(f"branch autoresearch/{tag} not found: nothing to export or publish for run {tag!r}")
    return refs


def export(config: Any, out: str | None, say: Callable[[str], None]) -> Path:
    from autoresearch.session import Session

    session = Session.open_existing(config, config.getoption("tag"))
    tag, root = session.tag, config.rootdir
    path = Path(out or f"autoresearch-{tag}.tar.gz")
    path = path if path.is_absolute() else Path.cwd() / path
    refs = run_refs(root, tag)
    with tempfile.TemporaryDirectory(prefix="autoresearch-export-") as tmp:
        bundle = Path(tmp) / "run.bundle"
        _git(root, "bundle", "create", "--quiet", str(bundle), *refs)
        manifest = dict(format=FORMAT, tag=tag, refs=refs, run_dir=str(session.run_dir),
                        initial_commit=session.initial_commit, tip=session.tip,
                        experiments=len(session.history), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=2))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w:gz") as tar:
            tar.add(Path(tmp) / "manifest.json", "manifest.json")
            tar.add(bundle, "run.bundle")
            for name in RUN_FILES + RUN_DIRS:
                if (session.run_dir / name).exists():
                    tar.add(session.run_dir / name, f"run/{name}")
            for key in ("journal_path", "lessons_path"):
                value = config.get(key)
                if value and (root / value).is_file():
                    tar.add(own_part(root / value, key, tag, Path(tmp)), f"project/{Path(value).name}")
    say(f"exported run {tag} ({len(session.history)} experiments, {len(refs)} refs) to {path}")
    return path


def own_part(path: Path, key: str, tag: str, tmp: Path) -> Path:
    """What of a project file the export of run `tag` carries: of the journal (one for every run of the
    project), its header and this run's entries only; any other file whole."""
    if key != "journal_path":
        return path
    from autoresearch.journalmarks import entries_of

    out = tmp / f"own-{path.name}"
    out.write_text(entries_of(path.read_text(encoding="utf-8", errors="replace"), tag), encoding="utf-8")
    return out


def import_run(config: Any, file: str, say: Callable[[str], None]) -> str:
    """Bring a run that export wrote into this clone; a bad archive is one line (escaped), nothing written."""
    try:
        return _import(config, file, say)
    except UsageError as exc:
        raise UsageError(printable(str(exc))) from None


def _import(config: Any, file: str, say: Callable[[str], None]) -> str:
    from autoresearch.gitrepo import exclude
    from autoresearch.session import check_tag

    root, source = config.rootdir, Path(file)
    if not source.is_file():
        raise UsageError(f"{file}: no such file (give a file that autoresearch export wrote)")
    limits = (size(config.getoption("max_size") or MAX_SIZE, "--max-size"),
              size(config.getoption("max_member_size") or MAX_MEMBER_SIZE, "--max-member-size"))
    with tempfile.TemporaryDirectory(prefix="autoresearch-import-") as tmp:
        try:
            with gzip.open(source) as raw, tarfile.open(fileobj=Bounded(raw, limits[0] + HEADROOM, file), mode="r:") as tar:
                members = check_members(tar, file, *limits)
                tar.extractall(tmp, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        except (tarfile.TarError, OSError, ValueError, KeyError, EOFError, RecursionError, zlib.error) as exc:
            raise UsageError(f"{file}: not an autoresearch export ({type(exc).__name__}: {str(exc)[:120]})") from None
        check_export(Path(tmp), manifest, file)
        tag = check_tag(str(manifest["tag"]))
        from autoresearch.main import check_state_dir

        check_state_dir(config)
        if (config.state_dir / "current").exists() and not (config.state_dir / "current").is_file():
            raise UsageError(f"{config.state_dir / 'current'} is not a file: nothing imported")
        run_dir = config.state_dir / "runs" / tag
        if run_dir.exists() or _git(root, "for-each-ref", f"refs/heads/autoresearch/{tag}").strip():
            raise UsageError(f"run {tag!r} exists here already (its folder or its branch): nothing imported")
        refs = [r for r in manifest["refs"] if r == f"refs/heads/autoresearch/{tag}" or
                (r.startswith(f"refs/autoresearch/{tag}/") and ".." not in r and ":" not in r and "*" not in r)]
        _git(root, "bundle", "verify", "--quiet", str(Path(tmp) / "run.bundle"))
        _git(root, "fetch", "--quiet", "--no-tags", str(Path(tmp) / "run.bundle"), *(f"{r}:{r}" for r in refs))
        exclude(Path(_git(root, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()),
                [config.get("state_dir")])
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(tmp) / "run", run_dir)
        if (Path(tmp) / "project").is_dir():
            shutil.copytree(Path(tmp) / "project", run_dir / "imported")
        moved(run_dir / "ledger.jsonl", manifest["run_dir"], str(run_dir))
        (config.state_dir / "current").write_text(tag + "\n")
    say(f"imported run {tag}: branch autoresearch/{tag}, {len(refs) - 1} experiment refs, its results in "
        f"{run_dir} (the journal and lessons in {run_dir / 'imported'}); autoresearch status shows it")
    return tag


class Bounded:
    """The decompressed archive, read no further than `limit` bytes whatever its headers claim (a
    header that says its data is huge, a gzip bomb): past it, a refusal."""

    def __init__(self, f: Any, limit: int, file: str) -> None:
        self.f, self.limit, self.file = f, limit, file

    def read(self, n: int = -1) -> bytes:
        room = self.limit + 1 - self.f.tell()
        data = self.f.read(room if n is None or n < 0 else min(n, room))
        if self.f.tell() > self.limit:
            raise UsageError(f"{self.file}: unpacks to more than {self.limit} bytes (see import --max-size; refused)")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0 and offset > self.limit:
            raise UsageError(f"{self.file}: unpacks to more than {self.limit} bytes (see import --max-size; refused)")
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()


def check_members(tar: tarfile.TarFile, file: str, max_size: int, max_member: int) -> list[tarfile.TarInfo]:
    """Every member, from its header, before anything is written: a plain file or folder inside the
    archive, its name once, and within the caps (a sparse member counts at its real size)."""
    seen: set[str] = set()
    members, total = [], 0
    for member in tar:  # one header at a time: a refused one stops the reading there
        name = posixpath.normpath(member.name)
        if name.startswith("/") or ".." in name.split("/") or not (member.isfile() or member.isdir()):
            raise UsageError(f"{file}: {member.name} is not something an export holds (refused)")
        if name in seen:
            raise UsageError(f"{file}: {member.name} is in it twice (an export holds each name once; refused)")
        seen.add(name)
        total += member.size
        if member.size > max_member or total > max_size:
            raise UsageError(f"{file}: unpacks to more than {max_member if member.size > max_member else max_size} "
                             f"bytes (at {member.name}, {member.size} bytes; an import unpacks at most "
                             f"--max-size {max_size} in all and --max-member-size {max_member} each; refused)")
        members.append(member)
    return members


def moved(ledger: Path, old: str, new: str) -> None:
    """The ledger's log paths, from where the run ran to where it is now (each entry parsed: only
    `log_path` values under the old run folder change)."""
    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (new + v[len(old):] if k == "log_path" and isinstance(v, str) and v.startswith(old + "/")
                        else fix(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    from autoresearch.ledger import line_hash

    lines: list[str] = []
    for line in ledger.read_text(encoding="utf-8").splitlines():
        try:
            entry = fix(json.loads(line))
        except ValueError:
            lines.append(line)  # a torn last line stays as it was: the ledger's reader skips it
            continue
        if isinstance(entry, dict) and "prev" in entry:  # chained again, from the lines as they now read
            entry["prev"] = line_hash(lines[-1].encode()) if lines else ""
        lines.append(json.dumps(entry))
    ledger.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def check_export(folder: Path, manifest: Any, file: str) -> None:
    """Everything an import needs, checked before anything is fetched or copied."""
    def bad(what: str) -> UsageError:
        return UsageError(f"{file}: not an autoresearch export ({what})")

    if not isinstance(manifest, dict):
        raise bad("its manifest is not a table")
    if manifest.get("format") != FORMAT:
        raise UsageError(f"{file}: export format {manifest.get('format')!r} (this autoresearch reads {FORMAT})")
    if not isinstance(manifest.get("tag"), str) or not isinstance(manifest.get("run_dir"), str) or \
            not Path(manifest["run_dir"]).is_absolute() or \
            Path(manifest["run_dir"]).parts[-2:] != ("runs", manifest["tag"]):
        raise bad("its manifest names no tag, or no run folder .../runs/<tag>")
    refs = manifest.get("refs")
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs) or \
            f"refs/heads/autoresearch/{manifest['tag']}" not in refs:
        raise bad("its manifest lists no branch of the run")
    if not (folder / "run.bundle").is_file() or not (folder / "run").is_dir():
        raise bad("no run.bundle or run/ in it")
    try:
        for line in (folder / "run" / "ledger.jsonl").read_bytes().decode("utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn line, as a killed runner leaves one: the ledger's reader skips it
            if not isinstance(entry, dict):
                raise bad("its ledger holds something other than entries")
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise bad(f"its ledger cannot be read: {type(exc).__name__}") from None
    from autoresearch.ledger import BrokenChain, Ledger

    try:  # a ledger edited after the run wrote it: refused, naming the line
        Ledger(folder / "run" / "ledger.jsonl").replay()
    except BrokenChain as exc:
        raise bad(printable(str(exc).replace(str(folder / "run") + "/", ""))) from None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise bad(f"its ledger holds an entry autoresearch did not write ({type(exc).__name__})") from None


def publish(config: Any, say: Callable[[str], None]) -> str:
    """Push the run's branch (and with --all every experiment's ref) and print the results as a
    Markdown table for a pull request (``publish --pr`` opens it: commands/share.py)."""
    from autoresearch.reports import read_results
    from autoresearch.session import Session

    session = Session.open_existing(config, config.getoption("tag"))
    tag, root, remote = session.tag, config.rootdir, config.getoption("remote") or "origin"
    refs = run_refs(root, tag)
    if subprocess.run(["git", "remote", "get-url", remote], cwd=root, capture_output=True).returncode:
        raise UsageError(f"no git remote named {remote!r}: add one (git remote add {remote} URL) or name another "
                         "with --remote")
    push = [f"refs/heads/autoresearch/{tag}:refs/heads/autoresearch/{tag}"]
    if config.getoption("all"):
        push += [f"{r}:{r}" for r in refs if r.startswith("refs/autoresearch/")]
    proc = subprocess.run(["git", "push", "--quiet", remote, *push], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        raise UsageError(f"git push {remote}: {proc.stderr.strip() or 'failed'} (check the remote with git remote -v)")
    try:
        rows = read_results(session.run_dir / "results.tsv") if (session.run_dir / "results.tsv").is_file() else []
    except (OSError, UnicodeDecodeError):
        rows = []
    metric = config.get("metric")
    kept = sum(r["status"] == Status.KEEP for r in rows)
    lines = [f"**autoresearch run `{tag}`**: {len(rows)} experiments, {kept} kept, on branch "
             f"`autoresearch/{tag}`" + (f" (every experiment under `refs/autoresearch/{tag}/`)" if
                                        config.getoption("all") else ""), "",
             f"| commit | {metric} | memory_gb | status | description |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [r.get("commit", ""), r.get(metric, ""), r.get("memory_gb", ""), r.get("status", ""),
                 r.get("description", "").replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    say(f"pushed {len(push)} ref{'s' if len(push) > 1 else ''} to {remote}\n")
    text = "\n".join(printable(line) for line in lines)  # the results may be an imported run's
    say(text)
    return text

