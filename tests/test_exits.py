"""How a command ends: the exit code by the type of what ended it (main.exit_code, in one place),
and stops by SIGINT / SIGTERM at any moment of start-up: always 130 / 143, never a traceback."""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch.errors import GitError, OutputClosed, Terminated, UsageError
from autoresearch.lock import Lock
from autoresearch.main import EXIT_CODES, InRun, exit_code
from autoresearch.reports import ExitCode, read_results
from conftest import git, simple, stop_everything_under, write

CONSOLE = Path(sys.executable).parent / "autoresearch"  # the console script: the entry point users start


# -------------------------------------------------------------------------------------------
# The mapping, by type


def test_exit_codes_by_type():
    assert exit_code(KeyboardInterrupt()) == ExitCode.INTERRUPTED == 130
    assert exit_code(Terminated()) == ExitCode.TERMINATED == 143
    assert exit_code(OutputClosed()) == exit_code(BrokenPipeError()) == ExitCode.OUTPUT_CLOSED == 141
    assert exit_code(UsageError("x")) == ExitCode.USAGE_ERROR == 4
    assert exit_code(GitError(("status",), ".", "x")) == exit_code(OSError(28, "No space left")) == ExitCode.STOPPED
    assert exit_code(RuntimeError("a bug")) == exit_code(ZeroDivisionError()) == ExitCode.INTERNAL_ERROR == 3
    assert exit_code(SystemExit(0)) == 0 and exit_code(SystemExit("usage")) == 4
    assert exit_code(InRun(Terminated())) == 143 and exit_code(InRun(GitError(("x",), ".", "y"))) == 1

    class MyError(UsageError):  # a subclass maps as its type does: matched on types, never on names
        pass

    class Terminated2(Exception):  # a look-alike name is not the type
        pass

    assert exit_code(MyError("x")) == 4 and exit_code(Terminated2()) == 3
    assert all(isinstance(kind, type) and issubclass(kind, BaseException) for kind, _ in EXIT_CODES)


def test_a_failure_while_a_stop_cleans_up_is_the_stop():
    """SIGINT, then git fails in the clean-up (an index.lock an earlier SIGKILL left): still 130."""
    for stop, code in ((KeyboardInterrupt(), 130), (Terminated(), 143)):
        try:
            try:
                raise stop
            except BaseException:
                raise GitError(("reset",), "/w", "index.lock exists")
        except GitError as exc:
            assert exit_code(exc) == code and exit_code(InRun(exc)) == code


def test_the_entry_point_is_cli_main_and_installs_the_handlers_once():
    text = (Path(__file__).resolve().parents[1] / "autoresearch" / "__main__.py").read_text()
    assert "sys.exit(main())" in text and "return cli.main()" in text and "__name__ ==" in text
    assert text.index("interrupts.install()") < text.index("from autoresearch import cli")
    for name in ("cli.py", "main.py", "__main__.py"):
        source = (Path(__file__).resolve().parents[1] / "autoresearch" / name).read_text()
        assert source.count("interrupts.install()") <= 1, name
        assert "__name__ == \"Terminated\"" not in source and ".__name__ ==" not in source


# -------------------------------------------------------------------------------------------
# Real stops at random moments of start-up


def started(repo: Path, *args: str, console: bool = True) -> subprocess.Popen:
    """`autoresearch ARGS` with SIGINT and SIGTERM blocked until its first instruction unblocks them:
    a stop sent at any moment reaches the runner no earlier than its entry point (before that, the
    interpreter is starting, and no program can handle a signal yet)."""
    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    command = [str(CONSOLE)] if console else [sys.executable, "-m", "autoresearch"]
    return subprocess.Popen([*command, *args], cwd=repo, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=preexec)


SLOW_START = "import time\ntime.sleep(0.4)\n"  # a conftest.py whose import takes its time: every command
SLOW_COLLECT = """\
import time
from autoresearch import hypothesis
time.sleep(0.6)


@hypothesis(description="slow to collect")
def slow(patch):
    '''It takes its time.'''
    patch.set(LR=0.02)
"""


@pytest.mark.parametrize("args, normal", [(("--help",), 0), (("run", "--collect-only"), 0), (("status",), 4)])
def test_a_stop_at_a_random_moment_of_start_up_is_130_or_143(repo, args, normal):
    assert CONSOLE.is_file()
    write(repo / "conftest.py", SLOW_START)
    write(repo / "experiments" / "slow.py", SLOW_COLLECT)
    rng = random.Random(f"{args}")
    try:
        for i in range(8):
            sig, code = ((signal.SIGINT, 130), (signal.SIGTERM, 143))[i % 2]
            delay = rng.uniform(0, 0.35) if i < 6 else rng.uniform(0.35, 2.5)  # surely in start-up, then anywhere
            start = time.monotonic()
            proc = started(repo, *args, console=i % 4 != 3)
            try:
                time.sleep(delay)
                alive, sent = proc.poll() is None, time.monotonic() - start
                with contextlib.suppress(ProcessLookupError):
                    (os.killpg if i % 3 == 2 else os.kill)(proc.pid, sig)  # to the runner, or to its group
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
            where = f"{args} {signal.Signals(sig).name} after {sent:.3f}s: rc {proc.returncode}\n{err}"
            assert "Traceback" not in err and "internal error" not in err, where
            if sent < 0.4:  # the conftest alone takes 0.4 s to import: the command cannot be over yet
                assert proc.returncode == code, where
            else:  # sent while it ran: the stop; after it was over: the command's own end
                assert proc.returncode in ((code, normal) if alive else (normal,)), where
    finally:
        stop_everything_under(repo)
    assert not (repo / ".autoresearch").exists()  # nothing of a run was written by a stopped start


def test_a_stop_to_the_group_during_a_run_is_130_or_143(repo):
    simple(repo, "a", "LR = 0.02\nSLEEP = 0.6")
    simple(repo, "b", "LR = 0.03\nSLEEP = 0.6")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hypotheses")
    rng = random.Random(7)
    try:
        for i, (sig, code) in enumerate([(signal.SIGINT, 130), (signal.SIGTERM, 143)] * 2):
            proc = started(repo, "run", "--tag", "t1", *(["--resume"] if i else []), "--repeats", "1")
            try:
                time.sleep(rng.uniform(0.3, 1.5))
                alive = proc.poll() is None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole group, the workload too
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
            assert "Traceback" not in err, err
            assert proc.returncode in ((code, 0) if alive else (0,)), (sig, proc.returncode, err)
    finally:
        stop_everything_under(repo)


# -------------------------------------------------------------------------------------------
# --resume of a run that recorded nothing


def test_resume_of_a_tag_that_recorded_nothing_starts_it_saying_so(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--tag", "s1", "--resume")
    assert r.rc == 0, r
    notes = [line for line in r.err.splitlines() if "recorded nothing yet" in line]
    assert len(notes) == 1 and "starting it" in notes[0] and "'s1'" in notes[0]
    assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]
    r = cli("run", "--tag", "s1", "--resume")  # now it has a record: a plain resume, nothing to say
    assert r.rc == 0 and "recorded nothing yet" not in r.err
    assert "--resume --tag X of a run that recorded nothing yet" in " ".join(cli("run", "--help").out.split())


def test_a_retry_loop_starts_after_a_sigkill_at_start_up(repo):
    write(repo / "conftest.py", SLOW_START)
    simple(repo, "a", "LR = 0.02")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hypotheses")
    try:
        proc = started(repo, "run", "--tag", "s1")
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # nothing recorded yet
        proc.communicate(timeout=30)
        assert not (repo / ".autoresearch" / "runs" / "s1" / "ledger.jsonl").exists()
        r = subprocess.run([str(CONSOLE), "run", "--tag", "s1", "--resume"], cwd=repo, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and r.stderr.count("recorded nothing yet") == 1, r.stderr
        assert [x["description"] for x in read_results(repo / "results.tsv")] == ["baseline", "a"]
    finally:
        stop_everything_under(repo)


def test_resume_alone_with_no_run_is_still_refused(repo, cli):
    simple(repo, "a", "LR = 0.02")
    r = cli("run", "--resume")
    assert r.rc == 4 and "to resume (runs here: none)" in r.err
    assert not (repo / ".autoresearch").exists()


# -------------------------------------------------------------------------------------------
# The lock's holder, as data


def test_the_lock_holds_its_holder_as_data_and_status_reads_it(repo, cli, tmp_path):
    path = tmp_path / "lock"
    assert Lock.read(path, wait=0) == {} and not Lock.held(path)
    with Lock(path, "t9"):
        holder = Lock.read(path)
        assert holder["pid"] == os.getpid() and holder["tag"] == "t9" and len(holder["since"]) == 19
        assert Lock.held(path)
        with pytest.raises(UsageError, match=rf"holds .*\(pid {os.getpid()}, tag t9, since "):
            with Lock(path, "t10"):
                pass
    assert not Lock.held(path) and Lock.read(path, wait=0) == {}
    simple(repo, "a", "LR = 0.02")
    assert cli("run", "--tag", "t1").rc == 0
    lock = repo / ".autoresearch" / "lock"
    with Lock(lock, "t1"):  # a runner at work on t1, as status sees it
        import json

        data = json.loads(cli("status", "--json").out)
        assert data["runner"] == dict(alive=True, pid=os.getpid(), tag="t1", since=Lock.read(lock)["since"])
        assert f"runner alive (pid {os.getpid()}, since " in cli("status").out
    assert "no runner at work" in cli("status").out


SWALLOWED = """
import os, signal, sys, weakref
from autoresearch import interrupts
from autoresearch.main import guard

interrupts.install()


class Dropped:
    def __del__(self):  # Python cannot raise from here: it prints "Exception ignored" and goes on
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        for _ in range(1000):  # the handler runs between these bytecodes, inside __del__
            pass


class Target:
    pass


def command():
    where = sys.argv[2]
    if where == "del":
        Dropped()
    else:  # a weakref callback, as importlib's module locks have
        target = Target()
        ref = weakref.ref(target, lambda r: Dropped.__del__(None))
        del target
    print("the command went on")
    if sys.argv[3:] == ["checkpoint"]:  # the next git command, say: the lost stop is raised there
        with interrupts.critical():
            pass
        print("past its next checkpoint")
    return 0


code = guard(command)
interrupts.close()
sys.exit(code)
"""


@pytest.mark.parametrize("where", ["del", "weakref"])
@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_that_python_swallows_still_ends_the_command_as_that_stop(where, sig, code):
    """A Ctrl-C or SIGTERM whose exception lands where Python cannot raise it (a __del__, a weakref
    callback such as an import's module lock: a fresh-clone run found it) is neither lost (exit 0)
    nor printed as "Exception ignored ... Traceback": the command ends as that stop."""
    r = subprocess.run([sys.executable, "-c", SWALLOWED, sig, where], capture_output=True, text=True, timeout=60)
    assert r.returncode == code, r
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


@pytest.mark.parametrize("where", ["del", "weakref"])
@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_that_python_swallows_ends_the_command_at_its_next_checkpoint(where, sig, code):
    """Not only the exit code: the command goes on no further than its next checkpoint (the end of
    a critical section, every git command's), so a run stopped as it starts does not run on."""
    r = subprocess.run([sys.executable, "-c", SWALLOWED, sig, where, "checkpoint"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == code and "the command went on" in r.stdout, r
    assert "past its next checkpoint" not in r.stdout, r
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


@pytest.mark.parametrize("signum, kind", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_stop_that_c_code_ran_and_dropped_is_raised_at_the_next_checkpoint(signum, kind):
    """CPython runs a signal handler inside some C code that then drops its exception: compile() of
    a module imported without its .pyc (PYTHONDONTWRITEBYTECODE, an editable install) did, and a
    SIGTERM as a run started let it run to the end. What such code leaves is a stop whose traceback
    never got past the handler's frames; the next checkpoint raises it, a stop on its way up never."""
    from autoresearch import interrupts

    owner = interrupts.install()
    try:
        with interrupts.armed():
            try:
                interrupts._handler(signum, None)
            except kind as exc:
                dropped = exc
            dropped.__traceback__ = dropped.__traceback__.tb_next  # as C code leaves it: no frame of ours
            with pytest.raises(kind) as raised, interrupts.critical():
                pass
            assert raised.value is dropped
            with interrupts.critical():  # raised once: from here on it is on its way up, not lost
                pass
            try:
                interrupts._handler(signum, None)
            except kind:  # caught by code of ours (the guard, a clean-up): on its way up, never raised again
                with interrupts.critical():
                    pass
                interrupts.checkpoint()
        assert interrupts.take() is not None
    finally:
        if owner:
            interrupts.restore()


EXEC_INTERRUPTED = """\
import os
import signal

# dataclasses and namedtuple exec strings to make their methods: a Ctrl-C can end one such exec
exec("os.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(1000):\\n    pass\\n", globals())
"""


@pytest.mark.parametrize("console", [False, True])
def test_a_ctrl_c_that_ends_an_exec_of_a_string_is_130_not_a_death_by_sigint(repo, console):
    """CPython marks a KeyboardInterrupt out of an exec of a string as unhandled for the whole process,
    caught or not; under python -m an exit by sys.exit(130) then became a death by SIGINT (-2), with
    no traceback: the soak's ctrl-c in start-up, 1 in 240 stops."""
    write(repo / "conftest.py", EXEC_INTERRUPTED)
    command = [str(CONSOLE)] if console else [sys.executable, "-m", "autoresearch"]
    r = subprocess.run([*command, "run", "--collect-only"], cwd=repo, capture_output=True, text=True, timeout=60,
                       start_new_session=True)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r
