"""Moving a run: ``export`` (one file), ``import`` (into another clone), ``publish`` (to a remote).

An export is a gzipped tar holding ``manifest.json``, ``run.bundle`` (a git bundle of the run's
branch, ``refs/heads/autoresearch/<tag>``, and every ``refs/autoresearch/<tag>/…`` ref: the kept
and the discarded experiments' commits), ``run/`` (the run's folder: the ledger, results.tsv,
results.jsonl, the logs, the learning curves) and ``project/`` (the journal and the lessons).
``import`` brings the commits and the run's folder into another clone, where ``status`` and
``report`` then show the run as they did where it ran.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from autoresearch.errors import UsageError

FORMAT = 1
RUN_FILES = ("ledger.jsonl", "results.tsv", "results.jsonl")
RUN_DIRS = ("logs", "curves")


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
                    tar.add(root / value, f"project/{Path(value).name}")
    say(f"exported run {tag} ({len(session.history)} experiments, {len(refs)} refs) to {path}")
    return path


def import_run(config: Any, file: str, say: Callable[[str], None]) -> str:
    from autoresearch.plugins.git import GitPlugin
    from autoresearch.session import check_tag

    root, source = config.rootdir, Path(file)
    if not source.is_file():
        raise UsageError(f"{file}: no such file (give a file that autoresearch export wrote)")
    with tempfile.TemporaryDirectory(prefix="autoresearch-import-") as tmp:
        try:
            with tarfile.open(source, "r:gz") as tar:
                for member in tar.getmembers():  # only plain files and folders, only inside
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                        raise UsageError(f"{file}: {member.name} is not something an export holds (refused)")
                tar.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        except (tarfile.TarError, OSError, ValueError, KeyError, EOFError, RecursionError) as exc:
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
        common = _git(root, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
        GitPlugin.exclude(Path(common), [config.get("state_dir")])
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(tmp) / "run", run_dir)
        if (Path(tmp) / "project").is_dir():
            shutil.copytree(Path(tmp) / "project", run_dir / "imported")
        moved(run_dir / "ledger.jsonl", manifest["run_dir"], str(run_dir))
        (config.state_dir / "current").write_text(tag + "\n")
    say(f"imported run {tag}: branch autoresearch/{tag}, {len(refs) - 1} experiment refs, its results in "
        f"{run_dir} (the journal and lessons in {run_dir / 'imported'}); autoresearch status shows it")
    return tag


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

    lines = []
    for line in ledger.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.dumps(fix(json.loads(line))))
        except ValueError:
            lines.append(line)  # a torn last line stays as it was: the ledger's reader skips it
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


def publish(config: Any, say: Callable[[str], None]) -> str:
    """Push the run's branch (and with --all every experiment's ref) and print the results as a
    Markdown table for a pull request."""
    from autoresearch.plugins.results_tsv import read_results
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
    kept = sum(r["status"] == "keep" for r in rows)
    lines = [f"**autoresearch run `{tag}`**: {len(rows)} experiments, {kept} kept, on branch "
             f"`autoresearch/{tag}`" + (f" (every experiment under `refs/autoresearch/{tag}/`)" if
                                        config.getoption("all") else ""), "",
             f"| commit | {metric} | memory_gb | status | description |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [r.get("commit", ""), r.get(metric, ""), r.get("memory_gb", ""), r.get("status", ""),
                 r.get("description", "").replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    say(f"pushed {len(push)} ref{'s' if len(push) > 1 else ''} to {remote}\n")
    text = "\n".join(lines)
    say(text)
    return text
