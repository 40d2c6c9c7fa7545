"""A graceful stop (SIGINT, SIGTERM) at any moment of an experiment's setup leaves its worktree as
a resume expects it: clean, at the branch tip; and the resumed run gives the uninterrupted rows.

The moment the random soak found wanting: a stop that lands between two git commands of the
setup (the patch written and staged, not yet committed), in about one session in six.
"""
from __future__ import annotations

import signal

import pytest

from autoresearch.plugins.results_tsv import read_results
from conftest import git, run_subprocess, simple, write
from test_session import run_dir

STOPPER = '''
    import os
    import signal

    import autoresearch.plugins.git as gitplugin

    _git = gitplugin.git


    def git(*args, **kw):
        """A stop sent to the runner right after one git command of the experiment's setup."""
        out = _git(*args, **kw)
        if args[0] == os.environ.get("STOP_AFTER") and "worktree" in str(kw.get("cwd", "")):
            os.kill(os.getpid(), getattr(signal, os.environ["STOP_WITH"]))
        return out


    gitplugin.git = git
'''


# plugins/git.py's setup wrapper leaves `self.at[worktree]` at the base commit while the patch is
# applied, so sessionfinish believes the worktree is at the tip and does not reset it; the fix (for
# the lead, who owns git.py) is one line after `self.move_to(work, ...)` in autoresearch_experiment_setup:
#     del self.at[work]  # the patch changes the files: where they are is unknown until its commit is recorded
# Strict: once that line is in, these pass, and the marks must go.
GIT_AT = pytest.mark.xfail(strict=True, reason="plugins/git.py: the worktree's cached commit outlives the patch")


@pytest.mark.parametrize("after", ["reset", pytest.param("add", marks=GIT_AT), pytest.param("commit", marks=GIT_AT)])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_graceful_stop_during_setup_leaves_the_worktree_clean(repo, after, signame):
    write(repo / "conftest.py", STOPPER)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "stopper plugin")
    simple(repo, "a", "LR = 0.02")
    simple(repo, "b", "DEPTH = 3")
    r = run_subprocess(repo, "run", "--tag", "t1", env={"STOP_AFTER": after, "STOP_WITH": signame})
    assert r.returncode == 128 + getattr(signal, signame), r.stderr
    assert "Traceback" not in r.stderr
    work = run_dir(repo) / "worktree"
    assert git(work, "status", "--porcelain", "--untracked-files=no") == ""  # nothing staged, nothing changed
    assert git(work, "rev-parse", "HEAD") == git(repo, "rev-parse", "autoresearch/t1")
    r = run_subprocess(repo, "run", "--tag", "t1", "--resume")
    assert r.returncode == 0, r.stderr
    assert [(x["description"], x["status"]) for x in read_results(repo / "results.tsv")] == [
        ("baseline", "keep"), ("a", "keep"), ("b", "keep")]
