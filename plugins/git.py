"""git: the run-tag branch, a worktree for the experiments, one commit each, keep or reset.

Experiments run in a git worktree on ``autoresearch/<tag>`` under the run's ignored state folder,
so the user's checkout and hypothesis files are never touched. Every experiment's commit is made
reachable under ``refs/autoresearch/<tag>/<NNN>-<name>`` as soon as it exists, kept or not.

GitPython answers the questions about the user's repository at the start (is it a repository,
has it a commit, is HEAD detached, are the editable files dirty): its objects make those clear.
The writes in the hot path (reset, add, commit, update-ref) call ``git`` directly: one process
each, no object database opened in Python, and exactly the commands the seed's protocol names.
Each runs in its own process group inside a critical section, so neither a Ctrl-C at the
terminal nor the runner's own signal handling kills git half-way through a write.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autoresearch import hookimpl, interrupts
from autoresearch.errors import GitError, UsageError

IDENTITY = {"GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
            "GIT_COMMITTER_NAME": "autoresearch", "GIT_COMMITTER_EMAIL": "autoresearch@localhost"}


def git(*args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """One git command, to completion: a stop that arrives meanwhile waits until git is done."""
    with interrupts.critical():
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, input=input, env=env,
                              start_new_session=True)
    if proc.returncode:
        raise GitError(args, cwd, proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")
    return proc.stdout.strip()


class GitPlugin:
    def __init__(self, config) -> None:
        self.config = config
        self.env: dict[str, str] | None = None
        self.worktree: Path | None = None

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
            self.move_to(self.worktree, session.tip or "HEAD")
            git("clean", "-q", "-fd", cwd=self.worktree)
        session.workdir = self.worktree
        session.tip = git("rev-parse", "HEAD", cwd=self.worktree)
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

    def move_to(self, worktree: Path, commit: str) -> None:
        """The worktree's branch and files at `commit`, whatever was there."""
        git("reset", "-q", "--hard", commit, cwd=worktree, env=self.env)

    @hookimpl(wrapper=True)
    def autoresearch_experiment_setup(self, experiment):
        session = experiment.session
        h = experiment.hypothesis
        if h is not None and experiment.base_commit and experiment.base_commit != session.tip:
            self.move_to(experiment.workdir, experiment.base_commit)
        result = yield
        if h is not None:
            work = experiment.workdir
            editable = [p for p in self.config.editable if (work / p).exists()]
            git("add", "--", *editable, cwd=work, env=self.env)
            message = (f"experiment: {h.description}\n\n{h.hypothesis}\n\n"
                       f"Hypothesis: {h.nodeid}\nHypothesis-Hash: {h.key}\n")
            git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", input=message, cwd=work, env=self.env)
            experiment.commit = git("rev-parse", "HEAD", cwd=work)
            # reachable from the moment it exists, whatever happens next
            git("update-ref", f"refs/autoresearch/{session.tag}/{experiment.label}", experiment.commit,
                cwd=work, env=self.env)
        return result

    @hookimpl
    def autoresearch_experiment_teardown(self, experiment, report) -> None:
        if experiment.hypothesis is not None and experiment.commit != experiment.session.tip:
            self.move_to(experiment.workdir, experiment.session.tip)

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.worktree is not None and session.tip and (self.worktree / ".git").exists():
            try:  # whatever stopped the session, leave the branch at the last kept commit
                self.move_to(self.worktree, session.tip)
            except GitError as exc:
                print(f"autoresearch: {exc}", file=sys.stderr)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(GitPlugin(config), "git-session")
