"""The runner's one way to git: short processes with git's config-driven programs turned off.

GitPython is not used: its own documentation warns that it leaks system resources in
long-running processes, and here its child processes lost Ctrl-C. Each call is one ``git``
process, to completion.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from autoresearch import interrupts
from autoresearch.errors import GitError

# Every git command the runner runs has git's config-driven programs turned off: hooks, the
# file-system monitor, external diff and text conversion, signing, pagers. A repository's config
# can name programs to run; whoever changed it, the runner's git never runs them.
SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.attributesFile=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false",
        "-c", "diff.external=", "-c", "core.pager=cat", "-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false",
        "-c", "gc.auto=0", "-c", "maintenance.auto=false")


def ask(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A question to git that writes nothing: its exit code and output, whatever they are. Without
    optional locks: `git status` would otherwise refresh the index under .git/index.lock, which a
    SIGKILL at that instant leaves behind in the user's repository."""
    return subprocess.run(["git", *SAFE, "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True)


def git(*args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """One git command, to completion: a stop that arrives meanwhile waits until git is done."""
    with interrupts.critical():
        proc = subprocess.run(["git", *SAFE, *args], cwd=cwd,
                              capture_output=True, text=True, input=input, env=env, start_new_session=True)
    if proc.returncode:
        raise GitError(args, cwd, proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")
    return proc.stdout.strip()


