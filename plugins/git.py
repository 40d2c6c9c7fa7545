"""git: the run-tag branch, a worktree for the experiments, one commit each, keep or reset.

Experiments run in a git worktree on ``autoresearch/<tag>`` under the run's ignored state folder,
so the user's checkout and hypothesis files are never touched. Every experiment's commit is made
reachable under ``refs/autoresearch/<tag>/<NNN>-<name>`` as soon as it exists, kept or not.

Everything is asked of ``git`` itself, one short process each: the questions about the user's
repository at the start (is it one, has it a commit, is HEAD detached, are the editable files
dirty) and the writes (worktree, reset, add, commit, update-ref), exactly the commands the
seed's protocol names. A write runs in its own process group inside a critical section, so
neither a Ctrl-C at the terminal nor the runner's own signal handling kills git half-way
through it, and with automatic gc and maintenance off, so no git process outlives the command
that started it. (A library that keeps git processes open between calls would have them
closed by the garbage collector, at a moment no one chooses: a Ctrl-C arriving then is lost.)
One write is the runner's own: an experiment's ref under ``refs/autoresearch/<tag>/`` is written
as git writes a loose ref (lock file, rename), where git's files store refs and keep no
reflog for it (:func:`autoresearch.repoguard.can_write_refs`; else ``git update-ref``): a
process fewer per experiment.

Each worker has a worktree of its own under the run's folder, its HEAD detached: experiments are
committed there, and the branch itself is moved only when an experiment is kept (``update-ref``,
at the ledger's commit point), so with several workers the branch never holds a commit that was
not decided. Every session starts from fresh worktrees (whatever a killed runner left in the
old ones, an applied patch or a half-written index, goes with them), and a resumed one removes
the lock files a killed runner's git left in the run's own refs, once no git process is at work
in the repository.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from autoresearch import hookimpl, interrupts, procs
from autoresearch.errors import GitError, UsageError
from autoresearch.execute import link_into
from autoresearch.gitcmd import SAFE, ask, git  # noqa: F401 (SAFE: for plugins that run git themselves)
from autoresearch.gitobjects import archive_is_plain
from autoresearch.gitrepo import exclude
from autoresearch.repoguard import Guard, can_write_refs, digest, head_of, write_loose_ref  # noqa: F401 (digest)

LOCK_WAIT = 10.0  # seconds to wait for a git at work in the repository before leaving its locks alone
IDENTITY = {"GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
            "GIT_COMMITTER_NAME": "autoresearch", "GIT_COMMITTER_EMAIL": "autoresearch@localhost"}


class GitPlugin:
    def __init__(self, config) -> None:
        self.config = config
        self.env: dict[str, str] | None = None
        self.branch = ""  # autoresearch/TAG
        self.branch_at = ""  # the commit this process last set the branch to
        self.at: dict[Path, str] = {}  # the commit each worktree's files are at
        self.guard: Guard | None = None
        self.loose_refs = False  # the run's refs written without a git process (repoguard.can_write_refs)
        self.plain_archive = False  # a commit's files derived from its base's (gitobjects.archive_is_plain)

    def write(self, *args: str, cwd: Path) -> str:
        """A write of the runner's own to the repository's refs: the guard learns of it at once
        (an ``update-ref REF SHA`` of a loose ref changes that ref alone: no snapshot needed)."""
        assert self.guard is not None
        with self.guard.lock:
            out = git(*args, cwd=cwd, env=self.env)
            if args[0] == "update-ref" and len(args) == 3 and len(args[2]) == 40 and args[1].startswith(
                    ("refs/heads/", "refs/tags/", f"refs/autoresearch/{self.guard.tag}/")):
                self.guard.known[args[1]] = args[2]
            else:
                self.guard.refresh()
        return out

    def write_ref(self, name: str, sha: str, cwd: Path) -> None:
        """A run ref (refs/autoresearch/TAG/...) set to `sha`: written as git would write it, without
        a git process, where :func:`autoresearch.repoguard.can_write_refs` says that is exact; else
        by ``git update-ref``. Either way the guard learns of it at once."""
        assert self.guard is not None
        if self.loose_refs:
            with self.guard.lock, interrupts.critical():
                if write_loose_ref(self.guard.common, name, sha):
                    self.guard.known[name] = sha
                    return
        self.write("update-ref", name, sha, cwd=cwd)

    @hookimpl(wrapper=True)
    def autoresearch_experiment_run(self, experiment):
        """After every run: the repository as the runner left it, or a stop that names the change."""
        result = yield
        if self.guard is not None:
            self.guard.verify(experiment.label)
        return result

    def check_repository(self, root: Path) -> Path:
        """The repository's common git folder; one clear line when `root` is no repository or has
        no commit yet. Without a committer identity, commits are signed "autoresearch"."""
        where = ask("rev-parse", "--git-common-dir", cwd=root)
        if where.returncode:
            raise UsageError(f"{root} is not a git repository: run `git init && git add -A && git commit -m "
                             "init` first, or run without git with -p no:git")
        if ask("rev-parse", "--verify", "-q", "HEAD", cwd=root).returncode:
            raise UsageError(f"{root}: the repository has no commit yet; commit {', '.join(self.config.editable)} "
                             "first (the run starts from HEAD)")
        if ask("var", "GIT_COMMITTER_IDENT", cwd=root).returncode:
            self.env = {**os.environ, **IDENTITY}
        return (root / where.stdout.strip()).resolve()

    @hookimpl(tryfirst=True)
    def autoresearch_sessionstart(self, session) -> None:
        config = self.config
        root = config.rootdir
        common = self.check_repository(root)
        self.exclude(common, [config.get("state_dir"), config.get("results_path") or "results.tsv",
                              *(config.get("link") or [])])  # a link in a worktree is never committed
        self.branch = f"autoresearch/{session.tag}"
        exists = ask("show-ref", "--verify", "--quiet", f"refs/heads/{self.branch}", cwd=root).returncode == 0
        if not session.resume:
            if exists:
                raise UsageError(f"branch {self.branch} already exists: resume that run with --resume --tag "
                                 f"{session.tag}, or start a new one with --tag NAME")
            status = ask("status", "--porcelain", "--untracked-files=no", "--", *config.editable, *config.protected,
                         cwd=root).stdout.splitlines()
            if status:
                raise UsageError(f"{status[0][3:]} has uncommitted changes; commit or stash them first "
                                 "(the run starts from the last commit, HEAD)")
            if ask("symbolic-ref", "-q", "HEAD", cwd=root).returncode:
                head = ask("rev-parse", "--short=7", "HEAD", cwd=root).stdout.strip()
                print(f"autoresearch: note: HEAD is detached; {self.branch} starts from {head}", file=sys.stderr)
        else:
            self.recover_locks(root, common, session.tag)
            if not exists and (session.history or session.initial_commit):
                raise UsageError(f"cannot resume {session.tag!r}: branch {self.branch} is gone (deleted since the "
                                 "run started?); start a new run with --tag NAME")
        self.guard = Guard(root, common, session.tag)
        keys = r"^(core\.logallrefupdates|core\.sharedrepository|core\.fsync|extensions\.refstorage|" \
               r"core\.autocrlf|tar\.umask)$"
        found = ask("config", "--get-regexp", keys, cwd=root).stdout
        self.loose_refs = can_write_refs(common, found)
        self.plain_archive = archive_is_plain(found)
        if not exists:  # a new run, or one killed before its branch existed
            git("branch", self.branch, "HEAD", cwd=root, env=self.env)
        if session.tip:  # the branch as the ledger has it: an experiment's commit made before a kill goes
            git("update-ref", f"refs/heads/{self.branch}", session.tip, cwd=root, env=self.env)
        session.tip = self.branch_at = git("rev-parse", f"refs/heads/{self.branch}", cwd=root)
        session.branch = self.branch
        # one worktree per worker, made anew: whatever a killed runner left in one goes with it
        session.workdirs = [session.run_dir / ("worktree" if w == 0 else f"worktree-{w}")
                            for w in range(session.workers)]
        self.remove_worktrees(common, session.run_dir)
        for work in session.workdirs:
            git("worktree", "add", "-q", "--detach", str(work), session.tip, cwd=root, env=self.env)
            link_into(config, work)  # what the workload needs that git leaves out (a data folder)
            self.at[work] = session.tip
        session.workdir = session.workdirs[0]
        self.guard.worktrees = list(session.workdirs)
        self.guard.refresh()

    exclude = staticmethod(exclude)  # autoresearch.gitrepo's: the commands keep the same paths untracked

    @staticmethod
    def remove_worktrees(common: Path, run_dir: Path) -> None:
        """Remove the run's worktrees and git's record of them, whatever state a kill left them in."""
        inside = str(run_dir.absolute()) + "/"
        for admin in (common / "worktrees").glob("*"):
            try:
                ours = (admin / "gitdir").read_text().strip().startswith(inside)
            except OSError:
                ours = False
            if ours:
                shutil.rmtree(admin, ignore_errors=True)
        for work in run_dir.glob("worktree*"):
            shutil.rmtree(work, ignore_errors=True)

    def recover_locks(self, root: Path, common: Path, tag: str) -> None:
        """Remove the lock files a killed runner's git left in this run's refs.

        Only the run's own refs (its branch, refs/autoresearch/TAG/...), which no one but a
        runner of this run writes, and we hold the run's lock; only once no git process is at
        work in the repository (a git the killed runner started may still be finishing).
        """
        deadline = time.monotonic() + LOCK_WAIT
        while procs.git_processes_under(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        if procs.git_processes_under(root):
            return  # a git is at work here: its locks are not stale; git will say if one is in the way
        locks = [common / "refs" / "heads" / "autoresearch" / f"{tag}.lock",
                 *sorted((common / "refs" / "autoresearch" / tag).rglob("*.lock"))]
        for lock in locks:
            if lock.is_file():
                lock.unlink()
                print(f"autoresearch: note: removed {lock}, a git lock a stopped runner left", file=sys.stderr)

    def move_to(self, work: Path, commit: str) -> None:
        """The worktree's files at `commit` (its HEAD is detached: the branch moves only on a keep)."""
        if self.at.get(work) != commit:
            git("reset", "-q", "--hard", commit, cwd=work, env=self.env)
            self.at[work] = commit

    def move_branch(self, tip: str) -> None:
        if tip and tip != self.branch_at:
            self.write("update-ref", f"refs/heads/{self.branch}", tip, cwd=self.config.rootdir)
            self.branch_at = tip

    @hookimpl(wrapper=True)
    def autoresearch_experiment_setup(self, experiment):
        session = experiment.session
        h = experiment.hypothesis
        work = experiment.workdir
        if h is not None:
            self.at.pop(work, None)  # whatever a patch or a kill did to the files, start clean
            self.move_to(work, experiment.base_commit or session.tip)
            del self.at[work]  # the patch changes the files: where they are is unknown until its commit is recorded
        elif getattr(experiment, "remeasure", False):  # the tip re-measured: its files, whatever ran last
            self.at.pop(work, None)
            self.move_to(work, session.tip)
        tracked = {p for p in self.config.editable if (work / p).exists()} if h is not None else set()
        result = yield
        if h is not None:
            patched = list(experiment.patch.after) if getattr(experiment, "patch", None) else []
            editable = [p for p in dict.fromkeys([*self.config.editable, *patched]) if (work / p).exists()]
            message = (f"experiment: {h.description}\n\n{h.hypothesis}\n\n"
                       f"Hypothesis: {h.nodeid}\nHypothesis-Hash: {h.key}\n")
            if not (set(editable) <= tracked and self.commit_files(work, editable, message)):
                git("add", "--", *editable, cwd=work, env=self.env)  # a file the patch made: added first
                git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", input=message, cwd=work, env=self.env)
            experiment.commit = self.at[work] = head_of(work) or git("rev-parse", "HEAD", cwd=work)
            if self.plain_archive and self.guard is not None:  # its files: its base's and these (execute.tree)
                experiment.committed = (self.guard.common, experiment.base_commit or session.tip, editable)
            # reachable from the moment it exists, whatever happens next
            self.write_ref(f"refs/autoresearch/{session.tag}/{experiment.label}", experiment.commit, cwd=work)
        return result

    def commit_files(self, work: Path, files: list[str], message: str) -> bool:
        """Commit `files` as they are in the worktree, in one process (``git commit -- FILES``, as
        ``git add FILES`` then ``git commit`` would); False when git knows one of them not."""
        try:
            git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", "--", *files, input=message,
                cwd=work, env=self.env)
        except GitError:
            return False
        return True

    @hookimpl
    def autoresearch_experiment_teardown(self, experiment, report) -> None:
        # the branch moves on a keep; a worktree is set to its next experiment's base when that
        # one is set up (and to the tip when the session ends), not here: it may be at work already
        self.move_branch(experiment.session.tip)

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if not self.branch:
            return
        if self.guard is not None and self.guard.tripped:
            return  # the repository was changed under the runner: no git in it, nothing it could run
        try:  # whatever stopped the session, leave the branch and the worktrees at the last kept commit
            self.move_branch(session.tip)
            for work in session.workdirs:
                if (work / ".git").exists():
                    self.move_to(work, session.tip)
        except GitError as exc:
            print(f"autoresearch: {exc}", file=sys.stderr)


@hookimpl
def autoresearch_configure(config) -> None:
    config.pluginmanager.register(GitPlugin(config), "git-session")
