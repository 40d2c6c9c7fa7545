"""``autoresearch ci``'s work: a nightly research job that continues where the last night left it.

The research lives on one long-lived branch, ``autoresearch/nightly`` by default: the branch of
the run tagged ``nightly``, holding its kept commits. Its record (the ledger, results, logs and
curves: the file ``autoresearch export`` writes) travels beside it on the remote, on the branch
``autoresearch-record/nightly``: one commit a night, each holding ``record.tar.gz`` (that night's
export, the whole run so far), ``report.md`` and ``progress.png``, its parent the night before.

A night, in a fresh clone:

1. **restore** — the run folder is here already (a runner that keeps its workspace): it continues.
   Else ``--from-export FILE`` is imported, else the record branch is fetched from the remote and
   its ``record.tar.gz`` imported (``import``: the branch and every experiment's ref come with it).
   Else this is the first night: a new run.
2. **what is new** — the hypotheses collected as ``run`` would (the same paths, ``-k``), less those
   the record decided (keep, discard or crash: keys are content hashes, so an edited file is new).
   Nothing new: say so and stop, before anything is written.
3. **run** — ``autoresearch run --tag TAG [--resume]`` in a child process: the baseline once (the
   first night), then only the new hypotheses, on top of the last kept commit.
4. **carry** — export the run, push the branch (a fast-forward) and the record commit.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from autoresearch.errors import UsageError

RECORD_FILE = "record.tar.gz"
IDENTITY = {"GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
            "GIT_COMMITTER_NAME": "autoresearch", "GIT_COMMITTER_EMAIL": "autoresearch@localhost"}


def tag_of(branch: str) -> str:
    """The run's tag: the research branch is ``autoresearch/TAG``."""
    from autoresearch.session import check_tag

    if not branch.startswith("autoresearch/") or branch.count("/") != 1:
        raise UsageError(f"--branch {branch!r}: the research branch is a run's branch, autoresearch/TAG "
                         "(e.g. autoresearch/nightly)")
    return check_tag(branch.split("/", 1)[1])


def record_branch(tag: str) -> str:
    return f"autoresearch-record/{tag}"


def git(root: Path, *args: str, binary: bool = False, env: dict[str, str] | None = None,
        input: bytes | None = None) -> Any:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, input=input,
                          env={**os.environ, **(env or {})})
    if proc.returncode:
        err = proc.stderr.decode(errors="replace").strip()
        raise UsageError(f"git {' '.join(args[:2])}: {err or f'exit code {proc.returncode}'}")
    return proc.stdout if binary else proc.stdout.decode(errors="replace").strip()


def remote_ref(root: Path, remote: str, ref: str) -> str:
    """The commit `ref` names on the remote, or "" when it has none (a remote that cannot be
    reached, or is not there, is one line)."""
    if subprocess.run(["git", "remote", "get-url", remote], cwd=root, capture_output=True).returncode:
        raise UsageError(f"no git remote named {remote!r}: add one (git remote add {remote} URL) or name another "
                         "with --remote")
    out = git(root, "ls-remote", "--quiet", remote, ref)
    return out.split()[0] if out else ""


def restore(config: Any, tag: str, remote: str, from_export: str | None, say: Callable[[str], None]) -> bool:
    """Bring last night's run here; True when there is one to continue (run with --resume)."""
    from autoresearch.share import import_run

    root = config.rootdir
    if (config.state_dir / "runs" / tag / "ledger.jsonl").is_file():
        say(f"continuing run {tag}: its record is here already ({config.state_dir / 'runs' / tag})")
        return True
    if from_export:
        import_run(config, from_export, say)
        return True
    branch, record = f"refs/heads/autoresearch/{tag}", f"refs/heads/{record_branch(tag)}"
    at = remote_ref(root, remote, record)
    if not at:
        if remote_ref(root, remote, branch):
            raise UsageError(f"{remote} has branch autoresearch/{tag} but no record of it ({record_branch(tag)}): "
                             "give the last night's export with --from-export FILE, or start afresh with "
                             "another --branch")
        say(f"no earlier night on {remote} (no branch {record_branch(tag)}): starting the research, run {tag}")
        return False
    git(root, "fetch", "--quiet", "--no-tags", remote, f"{record}:refs/autoresearch-ci/{tag}/record")
    data = git(root, "show", f"refs/autoresearch-ci/{tag}/record:{RECORD_FILE}", binary=True)
    with tempfile.TemporaryDirectory(prefix="autoresearch-ci-") as tmp:
        path = Path(tmp) / RECORD_FILE
        path.write_bytes(data)
        import_run(config, str(path), say)
    return True


class RunArguments(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"autoresearch ci -- RUN OPTIONS: {message} (see autoresearch run --help)")


def run_config(rootdir: Path, run_args: list[str]) -> Any:
    """The settings `autoresearch run RUN_ARGS` would read here, configured (unconfigure it after)."""
    from autoresearch import pluginmanager
    from autoresearch.config import Config, Parser
    from autoresearch.runargs import add_run_arguments

    pm = pluginmanager.build(rootdir, ["run", *run_args])
    parser = Parser()
    pm.hook.autoresearch_addoption.call_historic(kwargs=dict(parser=parser))
    run = RunArguments(prog="autoresearch run", add_help=False)
    add_run_arguments(run, parser)
    option = run.parse_args(run_args)
    option.subcommand = "run"
    config = Config(rootdir, pm, parser, option)
    pm.hook.autoresearch_configure.call_historic(kwargs=dict(config=config))
    return config


def undecided(rootdir: Path, run_args: list[str], tag: str, resumed: bool) -> tuple[list[str], int]:
    """The node ids of the hypotheses `run RUN_ARGS` would collect that the run `tag` has not
    decided, and how many it collected. A collection error is one line, as run says it."""
    from autoresearch.collect import collect_session
    from autoresearch.session import Session

    config = run_config(rootdir, run_args)
    try:
        session = Session(config)
        errors = collect_session(session)
        if errors:
            raise UsageError(f"{errors[0]} ({len(errors)} error{'s' if len(errors) > 1 else ''} during collection; "
                             "autoresearch run --collect-only shows them all): nothing ran")
        decided = Session.open_existing(config, tag).done_keys() if resumed else set()
        return [h.nodeid for h in session.items if h.key not in decided], len(session.items)
    finally:
        config.hook.autoresearch_unconfigure(config=config)


def run(rootdir: Path, tag: str, resumed: bool, junit: Path, run_args: list[str]) -> int:
    """``autoresearch run`` in a child process (its own settings and plugins, as on a terminal);
    its output goes to ours. It has a session of its own: a stop of ours (Ctrl-C, SIGTERM, a
    cancelled CI job) reaches it once, forwarded, and we wait for it to stop as it does on a
    terminal (the experiment in progress recorded as interrupted), then stop with that stop."""
    import signal

    from autoresearch import interrupts
    from autoresearch.errors import Terminated

    argv = [sys.executable, "-m", "autoresearch", "run", "--tag", tag, *(["--resume"] if resumed else []),
            "--junitxml", str(junit), *run_args]
    sys.stdout.flush()
    proc = subprocess.Popen(argv, start_new_session=True)  # in our folder: a PATH in RUN_ARGS means the same
    try:
        return proc.wait()
    except (KeyboardInterrupt, Terminated) as exc:
        with interrupts.deferred():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM)
            proc.wait()
        raise
    finally:
        if proc.poll() is None:  # anything else that ended us (a bug): nothing is left behind
            proc.kill()
            proc.wait()


def record_commit(root: Path, tag: str, files: dict[str, Path], parent: str, message: str) -> str:
    """A commit holding `files` (name -> path) at its top, on top of `parent` (the night before),
    made without touching any worktree or index."""
    entries = []
    for name, path in sorted(files.items()):
        if path.is_file():
            blob = git(root, "hash-object", "-w", "--", str(path))
            entries.append(f"100644 blob {blob}\t{name}\n")
    tree = git(root, "mktree", input="".join(entries).encode())
    return git(root, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, env=IDENTITY)


def carry(config: Any, tag: str, remote: str, out: Path, say: Callable[[str], None]) -> str:
    """Export the run to out/record.tar.gz, push its branch and the record commit; returns the
    record commit. The branch is pushed as a fast-forward: a night never rewrites an earlier one."""
    from autoresearch.share import export

    root = config.rootdir
    export(config, str(out / RECORD_FILE), say)
    parent = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/autoresearch-ci/{tag}/record"],
                            cwd=root, capture_output=True, text=True).stdout.strip()  # the night before, if any
    tip = git(root, "rev-parse", f"refs/heads/autoresearch/{tag}")
    commit = record_commit(root, tag, {RECORD_FILE: out / RECORD_FILE, "report.md": out / "report.md",
                                       "progress.png": out / "progress.png"}, parent,
                           f"autoresearch record of run {tag} at {tip[:12]}")
    git(root, "update-ref", f"refs/autoresearch-ci/{tag}/record", commit)
    proc = subprocess.run(["git", "push", "--quiet", remote, f"refs/heads/autoresearch/{tag}:refs/heads/autoresearch/{tag}",
                           f"{commit}:refs/heads/{record_branch(tag)}"], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        raise UsageError(f"git push {remote}: {proc.stderr.strip() or 'failed'} (the branch moved on the remote "
                         "since this night started? the export is in " + str(out / RECORD_FILE) + ")")
    say(f"pushed autoresearch/{tag} ({tip[:7]}) and its record ({record_branch(tag)}) to {remote}")
    return commit
