"""git: the run-tag branch, a worktree for the experiments, one commit each, keep or reset.

Experiments run in a git worktree on ``autoresearch/<tag>`` under the run's ignored state folder,
so the user's checkout and hypothesis files are never touched. Every experiment's commit is kept
reachable under ``refs/autoresearch/<tag>/<NNN>-<name>``, kept or not.

GitPython answers the questions about the user's repository at the start (is it a repository,
has it a commit, is HEAD detached, are the editable files dirty): its objects make those clear.
The writes in the hot path (reset, add, commit, update-ref) call ``git`` directly: one process
each, no object database opened in Python, and exactly the commands the seed's protocol names.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.errors import UsageError

IDENTITY = {"GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
            "GIT_COMMITTER_NAME": "autoresearch", "GIT_COMMITTER_EMAIL": "autoresearch@localhost"}


def git(*args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, input=input,
                          env=env)
    if proc.returncode:
        raise UsageError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


class GitPlugin:
    def __init__(self, config) -> None:
        self.config = config
        self.env: dict[str, str] | None = None
        self.worktree: Path | None = None

    def run(self, *args: str, input: str | None = None) -> str:
        assert self.worktree is not None
        return git(*args, cwd=self.worktree, input=input, env=self.env)

    def check_repository(self, root: Path):
        import git as gitpython  # GitPython: imported here, so --help stays fast

        try:
            repo = gitpython.Repo(root, search_parent_directories=True)
        except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
            raise UsageError(f"{root} is not a git repository: run `git init && git add -A && git commit -m "
                             "init` first, or run without git with -p no:git") from None
        if not repo.head.is_valid():
            raise UsageError(f"{root}: the repository has no commit yet; commit {', '.join(self.config.editable)} "
                             "first (the run starts from HEAD)")
        # ask git itself whether it can sign a commit (GitPython's config reader does not see
        # everything git does, GIT_CONFIG_GLOBAL for one); if not, commit as "autoresearch"
        ident = subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], cwd=root, capture_output=True)
        if ident.returncode:
            self.env = {**os.environ, **IDENTITY}
        return repo

    @hookimpl(tryfirst=True)
    def autoresearch_sessionstart(self, session) -> None:
        config = self.config
        root = config.rootdir
        repo = self.check_repository(root)
        self.exclude(Path(repo.git_dir), [config.get("state_dir"), config.get("results_path") or "results.tsv"])
        branch = f"autoresearch/{session.tag}"
        exists = any(h.name == branch for h in repo.heads)
        self.worktree = session.run_dir / "worktree"
        if not session.resume:
            if exists:
                raise UsageError(f"branch {branch} already exists: resume that run with --resume --tag "
                                 f"{session.tag}, or start a new one with --tag NAME")
            dirty = [p for p in config.editable + config.protected if repo.is_dirty(path=p, untracked_files=False)]
            if dirty:
                raise UsageError(f"{dirty[0]} has uncommitted changes; commit or stash them first "
                                 "(the run starts from the last commit, HEAD)")
            if repo.head.is_detached:
                print(f"autoresearch: note: HEAD is detached; {branch} starts from {repo.head.commit.hexsha[:7]}",
                      file=sys.stderr)
            git("worktree", "add", "-q", "-b", branch, str(self.worktree), "HEAD", cwd=root, env=self.env)
        else:
            if not exists:
                raise UsageError(f"cannot resume {session.tag!r}: branch {branch} is gone")
            if not (self.worktree / ".git").exists():
                git("worktree", "prune", cwd=root)
                git("worktree", "add", "-q", "-f", str(self.worktree), branch, cwd=root, env=self.env)
            # undo whatever a killed runner left behind: an applied patch, an experiment's commit
            self.run("reset", "-q", "--hard", session.tip or "HEAD")
            self.run("clean", "-q", "-fd")
        session.workdir = self.worktree
        session.tip = self.run("rev-parse", "HEAD")
        session.branch = branch

    @staticmethod
    def exclude(git_dir: Path, names: list[str]) -> None:
        """Keep the state folder and results.tsv untracked, without touching .gitignore."""
        path = git_dir / "info" / "exclude"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        missing = [f"/{n.strip('/')}" for n in names if f"/{n.strip('/')}" not in lines]
        if missing:
            with open(path, "a") as f:
                f.write("".join(f"{m}\n" for m in missing))

    @hookimpl(wrapper=True)
    def autoresearch_experiment_setup(self, experiment):
        session = experiment.session
        h = experiment.hypothesis
        if h is not None and experiment.base_commit and experiment.base_commit != session.tip:
            self.run("reset", "-q", "--hard", experiment.base_commit)
        result = yield
        if h is not None:
            editable = [p for p in self.config.editable if (self.worktree / p).exists()]
            self.run("add", "--", *editable)
            message = (f"experiment: {h.description}\n\n{h.hypothesis}\n\n"
                       f"Hypothesis: {h.nodeid}\nHypothesis-Hash: {h.key}\n")
            self.run("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", input=message)
            experiment.commit = self.run("rev-parse", "HEAD")
        return result

    @hookimpl
    def autoresearch_experiment_teardown(self, experiment, report) -> None:
        session = experiment.session
        if experiment.hypothesis is None:
            return
        if experiment.commit and experiment.commit != experiment.base_commit:
            slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in experiment.name)[:60].strip("-")
            self.run("update-ref", f"refs/autoresearch/{session.tag}/{experiment.seq:03d}-{slug}", experiment.commit)
        if report.status == "keep":
            session.tip = experiment.commit
        else:
            self.run("reset", "-q", "--hard", session.tip)

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.worktree is not None and session.tip and (self.worktree / ".git").exists():
            try:  # whatever stopped the session, leave the branch at the last kept commit
                self.run("reset", "-q", "--hard", session.tip)
            except UsageError as exc:
                print(f"autoresearch: {exc}", file=sys.stderr)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(GitPlugin(config), "git-session")
