"""The candidate is untrusted (issue 21): attacks a hostile agent can make with ordinary TOML
hypotheses, one test per kind, each checking the property rather than the example.

After any attack, against a session that ran the same hypotheses without it:
(a) the verdict and metric recorded for the attacked experiment are what the protected evaluator
    measured;
(b) the user's checkout, .git's config, hooks, HEAD, attributes, every branch and tag, and every
    record (ledger, results, journal, the other experiments' logs) are byte-identical but for that
    experiment's own result -- or, where that is the promise (the sandbox off), the session
    stopped with one line naming the change;
(c) no process of the run is alive afterwards.

Every attack runs with ``sandbox = "auto"`` (namespaces, asserted) and with ``sandbox = "off"``,
where only the run folder without .git, the clean environment, the forged-summary rule, the git
guard, the pins and the ledger's chain remain. A case marked xfail(strict) is an attack that
still succeeds: its reason says how.

The projects live outside /tmp (a sandbox covers /tmp with a private one, which would hide a
project there and prove nothing about the read-only filesystem), as the user's would.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoresearch import isolation
from untrusted_attacks import (ATTACK_LR, FORGED, NEXT_LR, branch, checkout, everything, fill, git, hypothesis, kill,
                               make_project, marked, measured, records, survivors)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the attacks use Linux's /proc")

BASE = Path.home() / ".cache" / "autoresearch-untrusted-tests"  # outside /tmp, /var/tmp, /dev/shm
SECRET_ENV = "s3cret-env-7f3a0c"  # the runner's own credential, in its environment
SECRET_FILE = "s3cret-key-91bc4e"  # in ~/.ssh/id_test of the runner's HOME


@dataclass
class World:
    root: Path  # the user's project
    home: Path  # the runner's HOME
    tmp: Path  # the runner's temporary folder (run and evaluator folders)
    mark: str  # what an attack puts in the argv of what it starts
    levels: list  # the sandbox levels sessions chose
    cli: object

    @property
    def ran(self) -> Path:
        """A file that exists only if code the attack planted ran outside its sandbox."""
        return self.home / "PLANTED-CODE-RAN"

    def values(self) -> dict[str, str]:
        return {"REPO": str(self.root), "HOME": str(self.home), "MARK": self.mark, "PID": str(os.getpid()),
                "TMP": str(self.tmp), "PY": sys.executable, "RAN": str(self.ran)}


def new_world(base: Path, cli, levels: list) -> World:
    root, home, tmp = base / "project", base / "home", base / "tmp"
    for folder in (root / "experiments", home / ".ssh", tmp):
        folder.mkdir(parents=True)
    (home / ".ssh" / "id_test").write_text(SECRET_FILE + "\n")
    (root / "prepare.py").write_text("TIME_BUDGET = 300\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "Test")
    return World(root, home, tmp, f"UNTRUSTED-MARK-{uuid.uuid4().hex[:12]}", levels, cli)


@pytest.fixture
def world(cli, monkeypatch):
    """A project outside /tmp, a runner with a HOME holding a key and a token in its environment;
    the sandbox level each session chose is recorded."""
    BASE.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="w-", dir=BASE))
    levels: list = []
    real = isolation.choose

    def choose(config):
        levels.append(real(config))
        return levels[-1]

    monkeypatch.setattr(isolation, "choose", choose)
    w = new_world(base, cli, levels)
    monkeypatch.setenv("HOME", str(w.home))
    monkeypatch.setenv("MY_API_TOKEN", SECRET_ENV)
    monkeypatch.setattr(tempfile, "tempdir", str(w.tmp))
    monkeypatch.chdir(w.root)
    try:
        yield w
    finally:
        kill(marked(w.mark))
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The reference: the same hypotheses, the attack's line replaced by a harmless one

_REFERENCES: dict = {}


def reference(world: World, mode: str, evaluate: bool, settings: str, with_next: bool, monkeypatch) -> dict:
    key = (mode, evaluate, settings, with_next)
    if key not in _REFERENCES:
        base = Path(tempfile.mkdtemp(prefix="ref-", dir=BASE))
        try:
            ref = new_world(base, world.cli, [])
            monkeypatch.setattr(tempfile, "tempdir", str(ref.tmp))
            monkeypatch.chdir(ref.root)
            make_project(ref.root, evaluate, settings)
            hypothesis(ref.root, "a_attack", ATTACK_LR)
            if with_next:
                hypothesis(ref.root, "b_next", NEXT_LR)
            r = world.cli("run", "--tag", "t1", "--sandbox", mode)
            assert r.rc == 0, r
            _REFERENCES[key] = {"records": records(ref.root, "a_attack"), "branch": branch(ref.root),
                                "records0": records(ref.root, "a_attack", upto=1)}
        finally:
            monkeypatch.setattr(tempfile, "tempdir", str(world.tmp))
            monkeypatch.chdir(world.root)
            shutil.rmtree(base, ignore_errors=True)
    return _REFERENCES[key]


# ----------------------------------------------------------------------------------------------
# An attack, and what must hold after it


@dataclass
class Attack:
    code: str
    # with the sandbox off: "same" (as without it), "stop" (the session stops naming `names`), "chain"
    # (status refuses the ledger), "survives" (as "same", but what it started outlives the run, as documented)
    off: str = "same"
    names: str = ""  # what the one-line stop must name
    evaluate: bool = True
    settings: str = ""
    with_next: bool = False  # a second experiment after it (leftovers)
    secret_off: bool = True  # with the sandbox off, the secrets still never reach a record
    crash: str = ""  # the attacked run is a crash with this cause (without an evaluator: "forged")
    xfail_off: str = ""  # an attack that still succeeds with the sandbox off: how
    xfail_auto: str = ""


def cases(attacks: dict[str, Attack]) -> list:
    out = []
    for name, attack in attacks.items():
        for mode in ("auto", "off"):
            why = attack.xfail_auto if mode == "auto" else attack.xfail_off
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            out.append(pytest.param(name, mode, attack, id=f"{name}-{mode}", marks=marks))
    return out


def level_name(world: World, r) -> str:
    """The sandbox level the session used: the header's line if it prints one, and the level chosen."""
    assert world.levels, r
    level = world.levels[-1]
    header = [line for line in (r.out + r.err).splitlines() if line.strip().startswith("sandbox:")]
    if header:  # e.g. "sandbox: namespaces (...)", "sandbox: off (...)"
        assert header[0].strip().startswith(level.why.split(" (")[0]), r
    return level.name


def run_attack(world: World, attack: Attack, mode: str, monkeypatch):
    """The session under attack; every process the attack started is ended in finally."""
    make_project(world.root, attack.evaluate, attack.settings)
    hypothesis(world.root, "a_attack", ATTACK_LR, fill(attack.code, **world.values()))
    if attack.with_next:
        hypothesis(world.root, "b_next", NEXT_LR)
    before = checkout(world.root)
    run_dir = world.root / ".autoresearch" / "runs" / "t1"
    try:
        r = world.cli("run", "--tag", "t1", "--sandbox", mode)
        alive = survivors(world.mark, run_dir, grace=0.5 if attack.off == "survives" and mode == "off" else 3.0)
    finally:
        if not (attack.off == "survives" and mode == "off"):  # else the test looks further (the fixture ends them)
            kill(marked(world.mark, run_dir))
    return r, before, alive


def need_namespaces() -> None:
    ok, why = isolation.probe(False)
    if not ok:
        pytest.skip(f"no unprivileged namespaces here ({why}); the subreaper fallback is tested on its own")


def check(world: World, attack: Attack, mode: str, monkeypatch) -> None:
    if mode == "auto":
        need_namespaces()
    r, before, alive = run_attack(world, attack, mode, monkeypatch)
    level = level_name(world, r)
    assert level == ("namespaces" if mode == "auto" else "none"), (level, r)
    # (c) nothing of the run outlives it, and nothing it planted ran in the runner
    if mode == "off" and attack.off == "survives":
        assert alive, "a daemon the docs say outlives the run with the sandbox off did not: update them"
    else:
        assert not alive, f"processes of the run still alive: {alive}"
    assert not world.ran.exists(), "code the attack planted ran outside its sandbox"
    # the runner's credentials never reach a log, record or output; with namespaces, nor its files
    seen = everything(world.root) + r.out.encode() + r.err.encode()
    if mode == "auto" or attack.secret_off:
        assert SECRET_ENV.encode() not in seen, "the runner's credential reached the run"
    if mode == "auto":
        assert SECRET_FILE.encode() not in seen, "a file under ~/.ssh reached the run"
    else:
        assert "whatever your user can" in world.levels[-1].why  # what the session says of it
    ref = reference(world, mode, attack.evaluate, attack.settings, attack.with_next, monkeypatch)
    outcome = "same" if mode == "auto" or attack.off == "survives" else attack.off
    status = world.cli("status", "--tag", "t1")
    if outcome == "stop":
        # (b) the session stopped, and says in one line what changed; what ran before is intact
        assert r.rc != 0, r
        assert "Traceback" not in r.err, r
        last = r.err.strip().splitlines()[-1]
        assert attack.names in last, r
        assert records(world.root, "a_attack", upto=1) == ref["records0"]
        assert status.rc == 0, status
        return
    if outcome == "chain":
        # the ledger was written behind the runner's back: status (and --resume, report) refuse it
        assert status.rc != 0 and "ledger.jsonl:" in status.err and "chain" in status.err, status
        return
    assert r.rc == 0, r
    assert status.rc == 0, status
    # (a) the verdict is the evaluator's measurement (without one: the forged run is a crash)
    done = [line for line in records(world.root, "")["ledger"] if isinstance(line, tuple)]
    attacked = next(report for kind, report in done if report["name"] == "a_attack")
    if attack.crash:
        assert (attacked["status"], attacked["cause"]) == ("crash", attack.crash), attacked
    else:
        assert attacked["metrics"]["val_bpb"] == measured(ATTACK_LR), attacked
        assert attacked["status"] == "discard", attacked
    # (b) everything else byte-identical to a session without the attack
    assert checkout(world.root) == before
    got = records(world.root, "a_attack")
    if attack.crash:  # its own result differs (a crash), not the rest
        got["ledger"] = [x for x in got["ledger"] if not (isinstance(x, tuple) and x[1].get("status") == "crash")]
        got["results"] = [[row for row in rows if "crash" not in row] for rows in got["results"]]
        want = dict(ref["records"])
        want["ledger"] = [x for x in want["ledger"] if not (isinstance(x, tuple) and x[1].get("status") == "discard")]
        want["results"] = [[row for row in rows if "discard" not in row] for rows in want["results"]]
        got["journal"] = [x for x in got["journal"] if not x.startswith("OWN")]
        want["journal"] = [x for x in want["journal"] if not x.startswith("OWN")]
        assert got == want
    else:
        assert got == ref["records"]
    assert branch(world.root) == ref["branch"]


# ----------------------------------------------------------------------------------------------
# Forged metrics

FORGE_LINE = f"val_bpb:          {FORGED:.6f}"
FORGERIES = {
    "summary-then-exit": Attack(f'''
print("step 00001 (100.0%) | loss 0.100000 | remaining 0s")
print("---")
print("{FORGE_LINE}", flush=True)
os._exit(0)
'''),
    "metric-after-the-real-one": Attack(f'''
import atexit
atexit.register(lambda: print("{FORGE_LINE}", flush=True))
'''),
    "rewrite-own-log-by-path-and-through-runner-fd": Attack(f'''
import atexit, glob
def forge():
    sys.stdout.flush()
    time.sleep(0.2)
    logs = [(log, log) for log in glob.glob("@REPO@/.autoresearch/runs/*/logs/*a_attack*.log")]
    try:
        fds = os.listdir("/proc/@PID@/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            logs.append((f"/proc/@PID@/fd/{{fd}}", os.readlink(f"/proc/@PID@/fd/{{fd}}")))
        except OSError:
            pass
    for path, target in logs:
        if target.endswith(".log"):
            try:
                with open(path, "w") as f:
                    f.write("---\\n{FORGE_LINE}\\n")
            except OSError:
                pass
atexit.register(forge)
'''),
    "evaluator-replaced-in-its-folder": Attack(f'''
import glob
for path in glob.glob("@TMP@/autoresearch-evaluator-*/evaluate.py"):
    try:
        with open(path, "w") as f:
            f.write('print("{FORGE_LINE}")\\n')
    except OSError:
        pass
'''),
    "python-startup-files-for-the-evaluator": Attack(f'''
import sysconfig
forge = 'print("{FORGE_LINE}")\\nimport os\\nos._exit(0)\\n'
user_site = os.path.expanduser("~/.local/lib/python%d.%d/site-packages" % sys.version_info[:2])
os.makedirs(user_site, exist_ok=True)
for path in ("sitecustomize.py", "usercustomize.py", "evaluate.py", user_site + "/usercustomize.py"):
    with open(path, "w") as f:
        f.write(forge)
with open(user_site + "/forge.pth", "w") as f:
    f.write("import os; print('{FORGE_LINE}'); os._exit(0)\\n")
'''),
    "evaluator-replaced-in-checkout": Attack(f'''
try:
    with open("@REPO@/evaluate.py", "w") as f:
        f.write('print("{FORGE_LINE}")\\n')
except OSError:
    pass
''', off="stop", names="evaluate.py"),
    "no-evaluator-metric-after-the-real-one": Attack(f'''
import atexit
atexit.register(lambda: print("{FORGE_LINE}", flush=True))
''', evaluate=False, crash="forged"),
    "no-evaluator-second-summary": Attack(f'''
import atexit
def again():
    print("step 00002 (100.0%) | loss 0.100000 | remaining 0s")
    print("---")
    print("{FORGE_LINE}", flush=True)
atexit.register(again)
''', evaluate=False, crash="forged"),
}


@pytest.mark.parametrize("name,mode,attack", cases(FORGERIES))
def test_a_forged_metric_never_decides(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)


# ----------------------------------------------------------------------------------------------
# Code planted for the runner's git, branches moved

PLANT = '''
import stat
def plant(path, text, executable=False):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            f.write(text)
        if executable:
            os.chmod(path, 0o755)
    except OSError:
        pass
SCRIPT = "#!/bin/sh\\necho ran >> @RAN@\\ncat\\n"
'''
GIT_ATTACKS = {
    "post-commit-hook": Attack(PLANT + '''
plant("@REPO@/.git/hooks/post-commit", SCRIPT, executable=True)
plant("@REPO@/.git/hooks/pre-commit", SCRIPT, executable=True)
''', off="stop", names=".git/hooks/p"),
    "core-fsmonitor-and-hookspath": Attack(PLANT + '''
plant("@TMP@/fsmonitor.sh", SCRIPT, executable=True)
plant("@TMP@/hooks/post-commit", SCRIPT, executable=True)
plant("@REPO@/.git/config", "[core]\\n\\tfsmonitor = @TMP@/fsmonitor.sh\\n\\thooksPath = @TMP@/hooks\\n")
''', off="stop", names=".git/config"),
    "filter-driver": Attack(PLANT + '''
plant("@TMP@/filter.sh", SCRIPT, executable=True)
plant("@REPO@/.git/config", "[filter \\"x\\"]\\n\\tsmudge = @TMP@/filter.sh\\n\\tclean = @TMP@/filter.sh\\n")
plant("@REPO@/.git/info/attributes", "* filter=x\\n")
''', off="stop", names=".git/config"),
    "worktree-gitfile-redirected": Attack(PLANT + '''
import glob, subprocess
evil = "@TMP@/evil"
if glob.glob("@REPO@/.autoresearch/runs/t1/worktree*/.git"):
    subprocess.run(["git", "init", "-q", evil], capture_output=True)
    plant(evil + "/.git/objects/info/alternates", "@REPO@/.git/objects\\n")
    plant("@TMP@/filter.sh", SCRIPT, executable=True)
    plant(evil + "/.git/config", "[filter \\"x\\"]\\n\\tsmudge = @TMP@/filter.sh\\n")
    plant(evil + "/.git/info/attributes", "* filter=x\\n")
for gitfile in glob.glob("@REPO@/.autoresearch/runs/t1/worktree*/.git"):
    try:
        with open(gitfile, "w") as f:
            f.write("gitdir: " + evil + "/.git\\n")
    except OSError:
        pass
''', off="stop", names="worktree/.git"),
    "runners-global-gitconfig": Attack(PLANT + '''
plant("@TMP@/filter.sh", SCRIPT, executable=True)
plant("@HOME@/.gitconfig", "[filter \\"x\\"]\\n\\tsmudge = @TMP@/filter.sh\\n\\tclean = @TMP@/filter.sh\\n")
plant("@HOME@/.config/git/attributes", "* filter=x\\n")
''', off="stop", names="~/.config/git/attributes"),
    "move-main-and-add-a-tag": Attack('''
import subprocess
subprocess.run(["git", "-C", "@REPO@", "update-ref", "refs/heads/main", "refs/autoresearch/t1/001-a_attack"],
               capture_output=True)
subprocess.run(["git", "-C", "@REPO@", "tag", "v-forged", "HEAD"], capture_output=True)
''', off="stop", names="refs/heads/main"),
    "move-run-branch": Attack('''
import subprocess
subprocess.run(["git", "-C", "@REPO@", "update-ref", "refs/heads/autoresearch/t1", "refs/autoresearch/t1/001-a_attack"],
               capture_output=True)
''', off="stop", names="refs/heads/autoresearch/t1"),
}


@pytest.mark.parametrize("name,mode,attack", cases(GIT_ATTACKS))
def test_the_repository_is_out_of_reach(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)


# ----------------------------------------------------------------------------------------------
# The records

FORGE_LEDGER = '''
import hashlib, json
path = "@REPO@/.autoresearch/runs/t1/ledger.jsonl"
try:
    lines = open(path, "rb").read().rstrip(b"\\n").split(b"\\n")
    done = json.loads(next(line for line in reversed(lines) if b'"event": "done"' in line))
    done["report"].update(seq=1, name="a_attack", nodeid="experiments/a_attack.toml::a_attack", status="keep",
                          metrics={"val_bpb": 0.5})
    done["prev"] = hashlib.sha256(lines[-1]).hexdigest() if CHAINED else "0" * 64
    with open(path, "a") as f:
        f.write(json.dumps(done) + "\\n")
except (OSError, StopIteration):
    pass
'''
RECORD_ATTACKS = {
    "results-tsv-rewritten": Attack('''
for path in ("@REPO@/results.tsv", "@REPO@/.autoresearch/runs/t1/results.tsv"):
    try:
        text = open(path).read()
        with open(path, "w") as f:
            f.write(text.replace("1.200000", "0.500000"))
    except OSError:
        pass
'''),
    "journal-rewritten": Attack('''
try:
    text = open("@REPO@/experiments/journal.md").read()
    with open("@REPO@/experiments/journal.md", "w") as f:
        f.write(text.replace("1.200000", "0.500000"))
except OSError:
    pass
''', xfail_off="with the sandbox off a run rewrites experiments/journal.md, which the runner only appends "
                 "to (neither pinned, chained nor rendered again from the ledger): the baseline's val_bpb 1.2 "
                 "reads 0.5 there for good"),
    "ledger-line-appended": Attack("CHAINED = False\n" + FORGE_LEDGER, off="chain"),
    "ledger-line-appended-with-its-hash": Attack(
        "CHAINED = True\n" + FORGE_LEDGER, off="stop", names="ledger.jsonl: changed outside autoresearch"),  # its hash passes the chain; the runner still finds the ledger longer than it left it
}


@pytest.mark.parametrize("name,mode,attack", cases(RECORD_ATTACKS))
def test_the_records_are_out_of_reach(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)


# ----------------------------------------------------------------------------------------------
# The user's checkout: settings, code, protected files, a conftest.py the runner would import

CHECKOUT_ATTACKS = {
    "train-py": Attack('''
try:
    with open("@REPO@/train.py", "a") as f:
        f.write("# the run was here\\n")
except OSError:
    pass
''', off="stop", names="train.py"),
    "pyproject-toml": Attack('''
try:
    with open("@REPO@/pyproject.toml", "a") as f:
        f.write("budget = 999\\n")
except OSError:
    pass
''', off="stop", names="pyproject.toml"),
    "conftest-py-dropped": Attack('''
try:
    with open("@REPO@/conftest.py", "w") as f:
        f.write("open(%r, 'a').write('ran')\\n" % "@RAN@")
except OSError:
    pass
''', off="stop", names="conftest.py",
        xfail_off="the project's conftest.py is imported (pluginmanager.load_conftest, at configure) before the "
                  "pins are checked (isolation.check_pins, at sessionstart): a conftest.py a run dropped with the "
                  "sandbox off runs in the runner on --resume, before the refusal"),
}


@pytest.mark.parametrize("name,mode,attack", cases(CHECKOUT_ATTACKS))
def test_the_users_checkout_is_out_of_reach(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)
    if mode == "off":  # what was changed on the way out is refused on the way back in
        r = world.cli("run", "--resume", "--tag", "t1", "--sandbox", mode)
        assert r.rc != 0 and attack.names in r.err.strip().splitlines()[-1], r
        assert not world.ran.exists(), "--resume imported the conftest.py a run planted"


# ----------------------------------------------------------------------------------------------
# Leftovers for the next run

LEFTOVER = ("print('LEFTOVER-IMPORTED')\\nimport atexit\\n"
            "atexit.register(lambda: open('model.txt', 'w').write('0.03'))\\n")
LEFTOVERS = {
    "random-py-in-run-folder": Attack(f'''
with open("random.py", "w") as f:
    f.write("{LEFTOVER}")
''', with_next=True),
    "random-py-in-worktree": Attack(f'''
import glob
for work in glob.glob("@REPO@/.autoresearch/runs/t1/worktree*"):
    try:
        with open(work + "/random.py", "w") as f:
            f.write("{LEFTOVER}")
    except OSError:
        pass
''', with_next=True),
    "random-py-in-the-runners-tmp": Attack(f'''
for folder in ("@TMP@",):
    try:
        with open(folder + "/random.py", "w") as f:
            f.write("{LEFTOVER}")
    except OSError:
        pass
''', with_next=True),
}


@pytest.mark.parametrize("name,mode,attack", cases(LEFTOVERS))
def test_nothing_of_a_run_reaches_the_next(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)
    logs = world.root / ".autoresearch" / "runs" / "t1" / "logs"
    assert not any("LEFTOVER-IMPORTED" in p.read_text(errors="replace") for p in logs.glob("002-*"))


# ----------------------------------------------------------------------------------------------
# Daemons

DAEMON = '''
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "@MARK@"], ENV)
    os._exit(0)
os.wait()
'''
DAEMONS = {  # with the sandbox off, docs/security.md promises the run's process group only
    "setsid-double-fork-with-marker": Attack("ENV = dict(os.environ)\n" + DAEMON, off="survives"),
    "setsid-double-fork-clean-env": Attack("ENV = {}\n" + DAEMON, off="survives"),
    "background-child": Attack('''
import subprocess
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "@MARK@"])
'''),
}


@pytest.mark.parametrize("name,mode,attack", cases(DAEMONS))
def test_no_process_outlives_its_run(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)
    if mode == "off" and attack.off == "survives":
        # as documented: a daemon that left the run's process group outlives it with the sandbox off;
        # one that kept the run's marker in its environment is ended by the run's next --resume
        r = world.cli("run", "--resume", "--tag", "t1", "--sandbox", "off")
        assert r.rc == 0, r
        run_dir = world.root / ".autoresearch" / "runs" / "t1"
        left = survivors(world.mark, run_dir)
        assert bool(left) == ("clean-env" in name), (left, r)


def test_the_subreaper_ends_daemons_where_namespaces_are_unavailable(world, monkeypatch):
    """sandbox = "auto" on a platform without namespaces (forced): the subreaper, said so, and every
    daemon, with or without the environment marker, ended with its run; strict refuses to run."""
    monkeypatch.setattr(isolation, "probe", lambda network: (False, "refused by the test"))
    code = "ENV = {}\n" + DAEMON + "ENV = dict(os.environ)\n" + DAEMON
    make_project(world.root)
    hypothesis(world.root, "a_attack", ATTACK_LR, fill(code, **world.values()))
    run_dir = world.root / ".autoresearch" / "runs" / "t1"
    try:
        r = world.cli("run", "--tag", "t1", "--sandbox", "auto")
        alive = survivors(world.mark, run_dir)
    finally:
        kill(marked(world.mark, run_dir))
    assert r.rc == 0, r
    assert world.levels[-1].name == "subreaper" and "refused by the test" in world.levels[-1].why
    assert not alive, f"daemons outlived the run under the subreaper: {alive}"
    r = world.cli("run", "--tag", "t2", "--sandbox", "strict")
    assert r.rc != 0 and "strict" in r.err and len(r.err.strip().splitlines()) == 1, r


# ----------------------------------------------------------------------------------------------
# Secrets

SECRETS = {
    "credentials-in-environment": Attack('''
print(os.environ.get("MY_API_TOKEN"))
print(sorted(os.environ.items()))
'''),
    "files-and-the-runners-environ": Attack('''
for path in ("@HOME@/.ssh/id_test", os.path.expanduser("~/.ssh/id_test"), "/proc/@PID@/environ",
             "/proc/%d/environ" % os.getppid()):
    try:
        print(open(path, "rb").read())
    except OSError as exc:
        print("cannot read", path, exc)
''', secret_off=False),
    "a-link-for-the-evaluator-to-read": Attack('''
os.remove("model.txt")
os.symlink("@HOME@/.ssh/id_test", "model.txt")
''', secret_off=False, crash="evaluator"),
}


@pytest.mark.parametrize("name,mode,attack", cases(SECRETS))
def test_secrets_never_reach_the_run(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)


# ----------------------------------------------------------------------------------------------
# Limits: the log, the files a run writes, the time budget

LIMITS = {
    "huge-log": Attack('''
chunk = "x" * 1023 + "\\n"
for _ in range(2000):
    sys.stdout.write(chunk)
print("TAIL-OF-THE-LOG")
''', settings="max_log_mb = 0.1\n"),
    "huge-file": Attack('''
size = 0
try:
    with open("big.bin", "wb") as f:
        for _ in range(4):
            f.write(b"\\0" * 2**20)
            f.flush()
            size = f.tell()
except OSError as exc:
    print("refused:", exc)
print("wrote", os.path.getsize("big.bin"), "bytes")
''', settings="max_file_mb = 1\n"),
}


@pytest.mark.parametrize("name,mode,attack", cases(LIMITS))
def test_limits_hold(world, monkeypatch, name, mode, attack):
    check(world, attack, mode, monkeypatch)
    log = (world.root / ".autoresearch" / "runs" / "t1" / "logs" / "001-a_attack.log").read_bytes()
    if name == "huge-log":
        assert len(log) <= 0.1 * 2**20 + 200, len(log)
        assert b"TAIL-OF-THE-LOG" in log and b"bytes of output dropped" in log
    else:
        wrote = int(log.split(b"wrote ", 1)[1].split()[0])
        assert wrote <= 2**20, wrote


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_an_overrun_is_marked_in_the_record(world, monkeypatch, mode):
    make_project(world.root, settings="budget = 0.5\nbudget_slack = 0.2\ntimeout = 60\n")
    hypothesis(world.root, "a_attack", ATTACK_LR, "time.sleep(1.5)\n")
    r = world.cli("run", "--tag", "t1", "--sandbox", mode)
    assert r.rc == 0, r
    done = [json.loads(line)["report"] for line in
            (world.root / ".autoresearch" / "runs" / "t1" / "ledger.jsonl").read_text().splitlines()
            if '"event": "done"' in line]
    attacked = next(d for d in done if d["name"] == "a_attack")
    assert attacked["runs"][0]["overrun"] > 0, attacked
    # and every record says so: the reason (ledger, results.jsonl, journal)
    assert "overran its time budget" in attacked["reason"], attacked
    sidecar = [json.loads(line) for line in
               (world.root / ".autoresearch" / "runs" / "t1" / "results.jsonl").read_text().splitlines()]
    assert ["overran its time budget" in row["reason"] for row in sidecar if row["name"] == "a_attack"] == [True]
    assert "overran its time budget" in (world.root / "experiments" / "journal.md").read_text()
    assert attacked["metrics"]["val_bpb"] == measured(ATTACK_LR)


def test_no_network_in_the_sandbox(world, monkeypatch):
    """With namespaces (sandbox_network false, the default) a run reaches no socket outside it: not
    even one on the machine's loopback."""
    import socket

    need_namespaces()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.1)
        port = listener.getsockname()[1]
        code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=2).sendall(b'out')\n"
                "    print('CONNECTED')\nexcept OSError as exc:\n    print('no network:', exc)\n" % port)
        make_project(world.root)
        hypothesis(world.root, "a_attack", ATTACK_LR, code)
        r = world.cli("run", "--tag", "t1", "--sandbox", "auto")
        assert r.rc == 0 and world.levels[-1].name == "namespaces", r
        try:
            conn, _ = listener.accept()
            conn.close()
            reached = True
        except OSError:
            reached = False
        assert not reached, "a run inside the sandbox connected to the machine's loopback"
        log = (world.root / ".autoresearch" / "runs" / "t1" / "logs" / "001-a_attack.log").read_text()
        assert "no network:" in log and "CONNECTED" not in log, log
    finally:
        listener.close()
