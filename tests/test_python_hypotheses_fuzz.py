"""Python hypothesis files that misbehave, fuzzed: slow or endless imports of every shape (a loop,
a sleep, in the file or in a helper it imports, in a decorator's argument, in the hypothesis function)
end after ``collect_timeout`` as one line naming the file and the line where the time ran out; and an
``@hypothesis`` on a class, behind any other decorators and any lines, is one line naming the line of
that ``@hypothesis``, inside the repository or out."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch.cli import main
from conftest import Result

PAD = st.lists(st.sampled_from(["", "# a comment", "X = 1", "def helper():\n    return 2", "import os"]),
               max_size=4)

# each slow shape: the lines it adds (with {pad} where padding goes), and which of them may be named
SLOW = {
    "loop": (["n = 0", "while True:", "    n += 1"], {2, 3}),
    "sleep": (["import time", "time.sleep(3600)"], {2}),
    "helper": (["import os, sys", "sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_lib'))",
                "import slowhelper"], {3}),
    "argument": (["import time", "@hypothesis(description=str(time.sleep(3600)))", "def arg(patch):",
                  "    '''Why.'''"], {2}),
    "body": (["@hypothesis(description='x')", "def body(patch):", "    '''Why.'''", "    import time",
              "    time.sleep(3600)"], {5}),
}


@pytest.fixture
def collect(repo, capsys):
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "collect_timeout = 0.3\n")
    (repo / "experiments" / "_lib").mkdir()  # not collected: a folder starting with _
    (repo / "experiments" / "_lib" / "slowhelper.py").write_text("import time\ntime.sleep(3600)\nx = 1\n")

    def run(*args: str) -> Result:
        capsys.readouterr()
        rc = main(["run", "--collect-only", *args])
        out = capsys.readouterr()
        return Result(int(rc), out.out, out.err)
    return run


def lines_of(pad: list[str]) -> list[str]:
    return [line for chunk in pad for line in chunk.split("\n")]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(sorted(SLOW)), before=PAD, after=PAD)
def test_any_slow_import_ends_after_collect_timeout_naming_the_file_and_line(repo, collect, shape, before, after):
    added, named = SLOW[shape]
    head = ["from autoresearch import hypothesis", *lines_of(before)]
    source = [*head, *added, *lines_of(after), "", "@hypothesis(description='late')", "def late(patch):",
              "    '''Never reached.'''"]
    (repo / "experiments" / "slow.py").write_text("\n".join(source) + "\n")
    began = time.monotonic()
    r = collect()
    assert time.monotonic() - began < 30, r
    lines = [line for line in r.err.splitlines() if line.startswith("ERROR")]
    assert r.rc == 4 and len(lines) == 1 and "Traceback" not in r.err, r
    m = re.fullmatch(r"ERROR experiments/slow\.py:(\d+): still running after 0\.3 s \(collect_timeout\): .+", lines[0])
    assert m and int(m.group(1)) - len(head) in named, (source, r.err)


ABOVE = st.lists(st.sampled_from(["@noop", "@noop2(1)"]), max_size=2)  # they pass on what @hypothesis made
BELOW = st.lists(st.sampled_from(["@noop", "@noop2(1)", "@staticmethod"]), max_size=2)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=PAD, above=ABOVE, below=BELOW, call=st.booleans(),
       outside=st.booleans())
def test_a_decorated_class_is_named_at_the_line_of_its_hypothesis_decorator(repo, collect, tmp_path, before, above,
                                                                             below, call, outside):
    head = ["from autoresearch import hypothesis", "", "def noop(x):", "    return x", "",
            "def noop2(n):", "    return noop", *lines_of(before), "", *above]
    source = [*head, "@hypothesis(description='a class')" if call else "@hypothesis", *below, "class Lr:",
              "    '''Not a function.'''"]
    folder = tmp_path / "elsewhere" if outside else repo / "experiments"
    shutil.rmtree(tmp_path / "elsewhere", ignore_errors=True)
    folder.mkdir(exist_ok=True)
    (folder / "cls.py").write_text("\n".join(source) + "\n")
    shown = str(folder) if outside else "experiments"
    r = collect(str(folder)) if outside else collect()
    (folder / "cls.py").unlink()
    lines = [line for line in r.err.splitlines() if line.startswith("ERROR")]
    assert r.rc == 4 and len(lines) == 1, r
    assert lines[0].startswith(f"ERROR {shown}/cls.py:{len(head) + 1}: @hypothesis decorates "), (source, r.err)
    assert "decorates a class" in lines[0] or below, r.err


DROPPED_FIRST = """\
from autoresearch import hypothesis
import time


class Dropped:
    def __del__(self):  # the time runs out in here, where Python cannot raise: it drops the exception
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            pass


Dropped()
while True:
    pass


@hypothesis(description="never reached")
def late(patch):
    '''Why.'''
"""


def test_a_time_limit_python_dropped_fires_again_and_the_file_is_one_line(repo):
    """collect_timeout's SIGALRM landing in a __del__ (or a gc or weakref callback, or C code that
    drops it) used to be lost for good: the endless loop after it then ran forever."""
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "collect_timeout = 0.5\n")
    (repo / "experiments" / "dropped.py").write_text(DROPPED_FIRST)
    r = subprocess.run([sys.executable, "-m", "autoresearch", "run", "--collect-only"], cwd=repo, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 4, r
    assert r.stderr.splitlines()[0] in (f"ERROR experiments/dropped.py:{line}: still running after 0.5 s "
                                        "(collect_timeout): a hypothesis file should only define functions; move "
                                        "slow work into the workload" for line in (13, 14)), r.stderr
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr, r.stderr


# decorators that, above @hypothesis, return something other than the function it marked
HIDING = {
    "staticmethod": ["@staticmethod"],
    "classmethod": ["@classmethod"],
    "property": ["@property"],
    "none": ["@drop"],
    "other function": ["@swap"],
    "partial": ["@functools.partial"],
    "class": ["class Ideas:", "    '''A namespace.'''", ""],  # @hypothesis inside a class: not at the top level
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(sorted(HIDING)), before=PAD, call=st.booleans(), plain_first=st.booleans())
def test_a_hypothesis_hidden_by_a_decorator_above_it_is_one_line_naming_its_line(repo, collect, shape, before, call,
                                                                                  plain_first):
    """A decorator above @hypothesis that returns something else, or an @hypothesis inside a class,
    used to hide the hypothesis silently (0 collected, exit 5): it is one error line, naming the
    file and the line of that @hypothesis."""
    head = ["import functools", "from autoresearch import hypothesis", "", "def drop(fn):", "    return None", "",
            "def swap(fn):", "    return lambda patch: None", "", *lines_of(before), ""]
    if plain_first:  # a hypothesis collection does find, before it
        head += ["@hypothesis(description='found')", "def found(patch):", "    '''Why.'''",
                 "    patch.set(LR=0.02)", ""]
    wrap = HIDING[shape]
    indent = "    " if shape == "class" else ""
    head += wrap
    source = [*head, indent + ("@hypothesis(description='hidden')" if call else "@hypothesis"),
              indent + "def idea(patch):", indent + "    '''Why.'''", indent + "    patch.set(LR=0.03)"]
    (repo / "experiments" / "hidden.py").write_text("\n".join(source) + "\n")
    r = collect()
    lines = [line for line in r.err.splitlines() if line.startswith("ERROR")]
    assert r.rc == 4 and len(lines) == 1 and "Traceback" not in r.err, (source, r)
    assert lines[0].startswith(f"ERROR experiments/hidden.py:{len(head) + 1}: @hypothesis idea is hidden: "), \
        (source, r.err)
    assert ("not at the module's top level" in lines[0]) == (shape == "class"), r.err


def test_a_hypothesis_wrapped_with_functools_wraps_is_still_collected(repo, collect):
    """A decorator above @hypothesis that keeps what it wraps reachable (functools.wraps) hides nothing."""
    (repo / "experiments" / "wrapped.py").write_text(
        "import functools\nfrom autoresearch import hypothesis\n\n\ndef logged(fn):\n"
        "    @functools.wraps(fn)\n    def inner(*args, **kwargs):\n        return fn(*args, **kwargs)\n"
        "    return inner\n\n\n@logged\n@hypothesis(description='wrapped')\ndef idea(patch):\n"
        "    '''Why.'''\n    patch.set(LR=0.03)\n")
    r = collect()
    assert r.rc == 0 and "Traceback" not in r.err and "wrapped.py::idea" in r.out, r
