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
    _write_ref = gitplugin.GitPlugin.write_ref


    def write_ref(self, *args, **kw):
        """The same right after the experiment's ref is written (without git where git's files allow)."""
        out = _write_ref(self, *args, **kw)
        if os.environ.get("STOP_AFTER") == "update-ref":
            os.kill(os.getpid(), getattr(signal, os.environ["STOP_WITH"]))
        return out


    gitplugin.GitPlugin.write_ref = write_ref
'''




# a stop after any of the setup's git commands: the worktree is reset to the tip (git.py forgets where
# a worktree is as soon as a patch touches its files). The files a base commit has are committed
# without an `add` (git commit -- FILES); a file a patch makes is added first (test_patch_args).
@pytest.mark.parametrize("after", ["reset", "commit", "update-ref"])
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


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_while_a_python_hypothesis_file_imports_is_the_stop_not_a_collection_error(repo, signame):
    """Collection reports what a hypothesis file raises on import as its error; a stop that lands then is
    the command's stop all the same: 130 or 143, no traceback, nothing collected as broken."""
    write(repo / "experiments" / "stopped.py", f'''
        import os
        import signal

        from autoresearch import hypothesis

        os.kill(os.getpid(), signal.{signame})


        @hypothesis(description="never collected")
        def stopped(patch):
            """The stop came first."""
            patch.set(LR=0.04)
    ''')
    r = run_subprocess(repo, "run", "--tag", "t1")
    assert r.returncode == 128 + getattr(signal, signame), r.stderr
    assert "Traceback" not in r.stderr and "on import" not in r.stderr, r.stderr
