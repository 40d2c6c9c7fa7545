"""The trust boundary, runner side: where a run of the candidate's code happens, with what.

The runner, its records and the user's repository are trusted; the candidate's code (the patched
workload, written by an agent nobody reviewed) is not. Every run gets:

- a **run folder** of its own, outside the project: a fresh copy of the experiment's files
  without ``.git`` (so no hook, config or ref of the repository is within reach), removed once
  the run is over; nothing of one run is visible to the next;
- the **sandbox** (:mod:`autoresearch.sandbox`): ``namespaces`` where the platform has them (the
  filesystem read-only but the run folder, private ``/tmp``, no network, every process ended
  with the run), else ``subreaper`` (every process ended with the run, the filesystem not
  protected), chosen by the ``sandbox`` setting;
- a **clean environment**: an allow-list of variables, ``HOME`` in the run folder, nothing of the
  runner's credentials;
- **limits**: the log capped (its head and tail kept), files it writes capped in size.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autoresearch import hookimpl, runfolder
from autoresearch.errors import UsageError

LAUNCHER = str(Path(__file__).resolve().with_name("sandbox.py"))  # run as a script: stdlib only

# What a run finds in its environment, of the runner's: the system's basics, locale and time, the
# accelerators' and math libraries' settings, and data caches (never tokens or keys).
ALLOWED = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "PYTHONUNBUFFERED",
           "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
           "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NUMEXPR_NUM_THREADS",
           "LD_LIBRARY_PATH", "XDG_CACHE_HOME", "HF_HOME", "HF_DATASETS_CACHE", "TORCH_HOME",
           "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "NCCL_DEBUG", "NCCL_P2P_DISABLE", "NCCL_IB_DISABLE",
           "AUTORESEARCH_CACHE", "AUTORESEARCH_THREADS"}
ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "ROCR_", "HIP_", "HSA_", "CUBLAS_", "CUDNN_", "PYTORCH_",
                    "AUTORESEARCH_")
# Folders of data that runs read, named by the environment: visible (read-only) even where they lie
# in a folder the sandbox makes private (/tmp)
DATA_VARS = ("AUTORESEARCH_CACHE", "XDG_CACHE_HOME", "HF_HOME", "HF_DATASETS_CACHE", "TORCH_HOME")
# Covered in every sandbox: where credentials usually live (the hide setting adds more)
HIDDEN = ("~/.ssh", "~/.aws", "~/.azure", "~/.config/gcloud", "~/.config/gh", "~/.kube", "~/.docker",
          "~/.gnupg", "~/.netrc", "~/.git-credentials", "~/.pypirc", "~/.huggingface/token",
          "~/.cache/huggingface/token", "~/.config/autoresearch", "~/.mlflow")
# names that look like secrets are never passed by prefix, whatever their prefix
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "ACCESS_KEY", "PRIVATE")


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("sandbox", "--sandbox", default="auto", choices=("auto", "strict", "off"),
                      help="how each run of the candidate's code is confined: auto (namespaces where the "
                           "platform allows them, else a subreaper that ends every process of the run), strict "
                           "(namespaces or refuse to run), off (the run folder and clean environment only)")
    parser.addoption("--accept-changes", action="store_true",
                     help="with --resume: your settings, conftest.py, protected or editable files changed since "
                          "the run started, on purpose; continue with them as they are now")
    parser.addsetting("sandbox_network", type="bool", default=False,
                      help="let runs reach the network (sandbox namespaces cut it off by default)")
    parser.addsetting("pass_env", "--pass-env", type="list", default=[],
                      help="environment variables passed to runs beyond the allow-list (PATH, locale, "
                           "CUDA_*, thread settings, data caches, AUTORESEARCH_*): e.g. [\"WANDB_MODE\"]")
    parser.addsetting("hide", type="list", default=[],
                      help="paths the candidate's runs must not read (covered inside the sandbox; ~ is "
                           "your home), e.g. a held-out data file that only the evaluator reads")
    parser.addsetting("max_log_mb", type="float", default=100.0,
                      check=lambda v: None if 0.01 <= v <= 1e6 else "give a size in MiB from 0.01 to 1e6",
                      help="a run's log is capped at this size in MiB: its first half and its latest output "
                           "are kept, what lies between is dropped with a note")
    parser.addsetting("max_file_mb", type="float", default=65536.0,
                      check=lambda v: None if 1 <= v <= 1e9 else "give a size in MiB from 1 to 1e9",
                      help="the largest file a run may write, in MiB (RLIMIT_FSIZE)")


@dataclass(frozen=True)
class Level:
    name: str  # namespaces, subreaper or none
    why: str  # one line for the session header

    @property
    def confined(self) -> bool:
        return self.name == "namespaces"


@functools.lru_cache(maxsize=4)
def probe(network: bool) -> tuple[bool, str]:
    """Whether namespaces work here: the launcher runs `true` in them once (about 30 ms)."""
    if not sys.platform.startswith("linux"):
        return False, f"no namespaces on {sys.platform}"
    work = tempfile.mkdtemp(prefix="autoresearch-probe-")
    try:
        proc = subprocess.run(launcher_argv({"level": "namespaces", "writable": [work], "network": network},
                                            ["/bin/sh", "-c", "echo ok > probe"]),
                              cwd=work, capture_output=True, text=True, timeout=30, env=clean_env({}, work))
        ok = proc.returncode == 0 and Path(work, "probe").is_file()
        reason = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return ok, "" if ok else reason.removeprefix("autoresearch: sandbox: ")
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def choose(config) -> Level:
    """The sandbox level the session uses, per the sandbox setting; strict without namespaces refuses."""
    mode = config.get("sandbox") or "auto"
    if mode == "off":
        return Level("none", "sandbox: off (each run in a fresh folder without .git, a clean environment; "
                             "its code can still read and write whatever your user can)")
    ok, reason = probe(bool(config.get("sandbox_network")))
    if not ok and mode != "strict" and not sys.platform.startswith("linux"):
        return Level("none", f"sandbox: none available on {sys.platform} (no namespaces, no subreaper): each run "
                             "in a fresh folder without .git, a clean environment; its code can still read and "
                             "write whatever your user can, and a process it detaches may outlive it")
    if ok:
        net = "network allowed" if config.get("sandbox_network") else "no network"
        return Level("namespaces", f"sandbox: namespaces (filesystem read-only but the run's folder, private "
                                   f"/tmp, {net}, every process ended with the run)")
    if mode == "strict":
        raise UsageError(f"sandbox = \"strict\" but namespaces are not available here ({reason}); use "
                         "sandbox = \"auto\" to run with the subreaper only, or run on a machine that allows "
                         "unprivileged user namespaces")
    return Level("subreaper", f"sandbox: subreaper only (namespaces unavailable: {reason}); every process of a "
                              "run is ended with it, but its code can read and write whatever your user can")


def check_links(names: list[str]) -> str | None:
    from autoresearch.config import inside

    for name in names:
        if inside(name) or any(not c.isprintable() for c in name) or any(c in name for c in "*?[]!#"):
            return f"{name!r} must be a plain path inside the project (data, not ../data, /data or a pattern)"
    return None


def link_into(config, work: Path) -> None:
    """Link the `link` files and folders of the project into a worktree (where git left them out)."""
    for name in config.get("link") or []:
        source, target = config.rootdir / name, work / name
        if not os.path.lexists(source):
            from autoresearch.errors import UsageError

            raise UsageError(f"link: {name} does not exist in {config.rootdir}: create it first (run your data "
                             "preparation), or take it out of link")
        if os.path.isdir(target) and not os.path.islink(target) and source.is_dir():
            from autoresearch.links import link_missing

            link_missing(source, target)  # a folder git tracks: its ignored files are linked into it
            continue
        if os.path.lexists(target):
            continue  # a tracked file, or linked already
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


@hookimpl
def autoresearch_preflight(config) -> None:
    from autoresearch.links import warn_tracked

    warn_tracked(config)  # a link naming a folder git tracks: one warning


# The launcher is imported from its folder (put last on the path, after the standard library),
# not run as a script: a script is compiled anew every time (some 5 ms a run), an import reads the
# compiled file the runner's own import of autoresearch.sandbox left in __pycache__. -I -S: no
# site-packages, no environment, and not the current folder (the run's) on the path.
LAUNCH = "import sys; sys.path.append(sys.argv[1]); import sandbox; sys.exit(sandbox.main(sys.argv[2:]))"


def launcher_argv(spec: dict, command: list[str]) -> list[str]:
    from autoresearch.sandbox import encode

    return [sys.executable, "-I", "-S", "-c", LAUNCH, str(Path(LAUNCHER).parent), encode(spec), "--", *command]


def clean_env(extra: dict[str, str], home: str, passed: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The allow-listed part of the runner's environment, `passed` names, `extra`, HOME = `home`."""
    env = {}
    for name, value in os.environ.items():
        secret = any(word in name.upper() for word in SECRET_WORDS)
        if name in ALLOWED or name in passed or (name.startswith(ALLOWED_PREFIXES) and not secret):
            env[name] = value
    env.setdefault("PATH", os.defpath)
    env.setdefault("AUTORESEARCH_CACHE", str(Path.home() / ".cache" / "autoresearch"))  # the reference data
    env.update(extra)
    env["HOME"] = home
    return env


def run_exclude(config) -> tuple[str, ...]:
    """The hypothesis folders (``paths``) that a run's files leave out: those inside the project
    that hold none of the editable or protected files."""
    from autoresearch.config import inside

    code = [*config.editable, *config.protected]
    out = []
    for name in config.get("paths") or []:
        clean = str(name).strip("/")
        if not clean or clean == "." or inside(clean) or any(c in clean for c in "*?[]!#:"):
            continue
        if not any(f == clean or f.startswith(clean + "/") for f in code):
            out.append(clean)
    return tuple(out)


def archive(config, commit: str | None, source: Path | None = None) -> runfolder.Tree:
    """The files a run gets: `commit`'s, from git's object store (without git, `source`'s), less
    the hypothesis folders (:func:`run_exclude`); see :mod:`autoresearch.runfolder`."""
    return runfolder.archive(config.rootdir, commit, source, run_exclude(config))


def make_run_folder(config, tree: runfolder.Tree, label: str) -> Path:
    """A fresh folder outside the project holding `tree` (:func:`archive`), without .git, with the
    `link` setting's data linked in: nothing of an earlier run is in it."""
    folder = Path(tempfile.mkdtemp(prefix=f"autoresearch-{label}-"))
    runfolder.write(tree, folder)
    link_into(config, folder)
    return folder


remove = runfolder.remove


def spec(level: Level, config, cwd: Path, writable: list[Path] | tuple = (),
         readonly: list[Path] | tuple = ()) -> dict:
    """What the launcher is told: the level, where the command starts, which folders it may write
    (only these, and a private /tmp), which are read-only even inside them, what is hidden."""
    out: dict = {"level": level.name, "cwd": str(cwd)}
    if cwd not in writable and cwd not in readonly:
        readonly = [*readonly, cwd]  # the folder it starts in is there, under the private /tmp too
    if level.name != "none":
        links = [str((config.rootdir / name).resolve()) for name in config.get("link") or []]
        links += [os.environ[v] for v in DATA_VARS if os.environ.get(v)]  # data caches, read-only
        out.update(writable=[str(p) for p in writable], readonly=[str(p) for p in readonly],
                   expose=[sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent),
                           str(Path(LAUNCHER).parent),  # the launcher, for a sandbox inside (the evaluator's)
                           str(config.rootdir), *links],
                   hide=[os.path.expanduser(p) for p in (*HIDDEN, str(config.state_dir.resolve()),
                                                         *(config.get("hide") or []))],
                   network=bool(config.get("sandbox_network")))
    out["limits"] = {"fsize": int((config.get("max_file_mb") or 65536.0) * 2**20)}
    return out


def wrap(level: Level, config, command: list[str], cwd: Path, writable: list[Path] | tuple = (),
         readonly: list[Path] | tuple = ()) -> list[str]:
    """The argv that runs `command` in `cwd` at `level` (see :func:`spec`)."""
    return launcher_argv(spec(level, config, cwd, writable, readonly), command)


def pinned_files(config) -> dict[str, str | None]:
    """The files a session pins, in your checkout: the settings (pyproject.toml), conftest.py (the
    runner imports it), the protected and the editable files. Their SHA-256, None where missing."""
    out: dict[str, str | None] = {}
    for name in dict.fromkeys(["pyproject.toml", "conftest.py", *config.protected, *config.editable,
                               "autoresearch.args.toml"]):  # the args and overrides kinds' file
        path = config.rootdir / name
        try:
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        except OSError:
            out[name] = "unreadable"
    return out


def changed(before: dict[str, str | None], now: dict[str, str | None]) -> list[str]:
    return [name for name in before if name in now and before[name] != now[name]]


def check_pins(session) -> None:
    """On resume: the pinned files as the run left them, unless --accept-changes says they changed
    on purpose; then (and for a new run) the pins of this session go in the ledger."""
    config = session.config
    now = pinned_files(config)
    if session.ledger.exists():
        before = session.ledger.replay().pinned
        moved = changed(before, now)
        if moved and not config.getoption("accept_changes"):
            raise UsageError(f"{moved[0]} changed since the run started{' (and ' + ', '.join(moved[1:]) + ')' if moved[1:] else ''}: "
                             "a run continues with the settings and files it started with. If you changed it on "
                             "purpose, resume with --accept-changes; otherwise restore it (git diff shows it)")
    session.pins = now
    session.ledger.append({"event": "pins", "files": now})


@hookimpl(wrapper=True)
def autoresearch_experiment_run(experiment):
    """After every run: your settings, conftest.py, protected and editable files as they were, or a
    stop that names the one that changed."""
    result = yield
    session = experiment.session
    if getattr(session, "pins", None):
        moved = changed(session.pins, pinned_files(session.config))
        if moved:
            raise UsageError(f"{moved[0]} in your checkout changed while {experiment.label} ran: a run must never "
                             "change it. Restore it (git diff shows it), or if you changed it yourself, continue "
                             "with --resume --accept-changes")
    return result


@hookimpl(tryfirst=True)
def autoresearch_sessionstart(session) -> None:
    """Choose the sandbox level (before the session's header, which says it) and pin the settings
    and protected files."""
    config = session.config
    session.sandbox = choose(config)
    if config.get("evaluate") and config.get("executor", "local") != "local":
        raise UsageError(f"evaluate runs with the local executor only (executor = {config.get('executor')!r}): "
                         "the evaluator reads the run's folder, which stays on the node that ran it")
    check_pins(session)


def evaluator_files(session) -> runfolder.Tree:
    """The protected evaluator's files: the run's first commit, read from git's object store once
    per session (without git: the unmodified files, as the baseline runs them) and unpacked anew
    for every evaluation, so nothing a run does to them lasts."""
    if session.evaluator is None:
        commit = "" if session.scratch else (session.initial_commit or session.tip)
        session.evaluator = archive(session.config, commit, session.workdir)
    return session.evaluator


def evaluator_folder(session, label: str) -> Path:
    """Where the evaluator runs: its files unpacked anew for this evaluation, or, in a sandbox with
    namespaces (where no run can see the folder, let alone write it: /tmp is private there), once
    for the session."""
    if session.sandbox is not None and session.sandbox.confined:
        if session.evaluator_dir is None:
            session.evaluator_dir = make_run_folder(session.config, evaluator_files(session), "evaluator")
        return session.evaluator_dir
    return make_run_folder(session.config, evaluator_files(session), f"evaluator-{label}")


@hookimpl
def autoresearch_sessionfinish(session, exitstatus) -> None:
    if session.evaluator_dir is not None:
        remove(session.evaluator_dir)
        session.evaluator_dir = None
