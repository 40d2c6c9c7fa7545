"""A fake Slurm for the tests: sbatch, srun, squeue, scancel, sacct and scontrol as one small script,
which runs each job here, as a process group of its own, and can preempt and requeue it.

Installed on PATH by :func:`install` (a folder of wrappers named after the commands). Its state
lives in $FAKE_SLURM_DIR: a counter, and per job a JSON file of its state (written under a lock,
by sbatch and then by the job's own daemon) and flag files (written by scancel and scontrol). A
job is the batch script run with bash in the state folder (not the submitter's: the end of a
runner never touches it), with SLURM_JOB_ID, SLURM_RESTART_COUNT (after a requeue) and the rest of
what a task sees.

A job's processes are what Slurm's cgroup holds: its daemon is a child subreaper, so every
process of the job stays below it, even one whose parent exited (bash killed before the python it
runs, a workload in a session of its own), and the daemon reaps them. scancel and the end of an
attempt signal all of them, not only those still below the batch script.

Preemption: FAKE_SLURM_PREEMPT="NAME:TEXT:MODE" preempts the first job named NAME once TEXT is in
its output: the job shows PREEMPTED, every process of the job gets SIGTERM, then SIGKILL a second
later (FAKE_SLURM_KILL_WAIT seconds: Slurm's KillWait) (as PreemptMode=REQUEUE does); MODE "requeue" puts it back in the queue under the same id
(SLURM_RESTART_COUNT=1 for its next attempt), "cancel" ends it PREEMPTED. Or by hand:
``fake_slurm.py preempt ID [--no-requeue]``.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("sbatch", "srun", "squeue", "scancel", "sacct", "scontrol")
ACTIVE = ("PENDING", "RUNNING", "REQUEUED")


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Wrappers for the Slurm commands in `bin_dir`; returns the environment that puts them first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {name} "$@"\n')
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_SLURM_DIR": str(state_dir)}


def state_dir() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def job_file(job: str, suffix: str = "json") -> Path:
    return state_dir() / f"{job}.{suffix}"


def read(job: str) -> dict:
    try:
        return json.loads(job_file(job).read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def locked(job: str):
    """The job's lock: sbatch and the daemon update its JSON file one at a time (no update lost)."""
    with open(job_file(job, "lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def write(job: str, **fields) -> None:
    with locked(job):
        data = {**read(job), **fields}
        tmp = job_file(job, f"json.{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, job_file(job))


def jobs() -> list[str]:
    return sorted((p.stem for p in state_dir().glob("*.json")), key=int)


def stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) of a process; ("", 0) once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return "", 0


def alive(pid: int) -> bool:
    """Running, or stopped: not gone, and not a zombie waiting to be reaped."""
    return stat(pid)[0] not in ("", "Z", "X")


def descendants(root: int) -> list[int]:
    """`root` and every process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(stat(int(entry.name))[1], []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def job_processes(job: str) -> list[int]:
    """The job's processes still alive: everything below its daemon (a subreaper: none escapes)."""
    daemon = read(job).get("daemon")
    return [p for p in descendants(daemon)[1:] if alive(p)] if daemon and alive(daemon) else []


def send(pids, sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def signal_job(job: str, sig: int) -> list[int]:
    pids = job_processes(job)
    send(pids, sig)
    return pids


def end_attempt(job: str, grace: float | None = None) -> None:
    """SIGTERM every process of the job, then SIGKILL what is left after `grace` seconds; returns
    once none is alive (as slurmstepd, whose job ends with its cgroup's last process)."""
    grace = float(os.environ.get("FAKE_SLURM_KILL_WAIT", "1.0")) if grace is None else grace
    pids = set(signal_job(job, signal.SIGTERM))
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in {*pids, *job_processes(job)}):
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while (left := [p for p in {*pids, *job_processes(job)} if alive(p)]) and time.monotonic() < deadline:
        send(left, signal.SIGKILL)
        time.sleep(0.02)


def reap(keep: int = 0) -> None:
    """Reap this process's children that have exited, up to `keep` (the batch script, whose exit
    code Popen reads): the daemon adopts the job's orphans, so it must wait for them."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # a look, not yet a wait
        except ChildProcessError:
            return
        if info is None or info.si_pid == keep:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def become_subreaper() -> None:
    """Orphans of the job's processes come to this process, not to init (PR_SET_CHILD_SUBREAPER)."""
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


def sbatch(args: list[str]) -> int:
    script = Path(args[-1]).read_text()
    with open(state_dir() / "counter", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        job = str(int(f.read() or "100") + 1)
        f.seek(0)
        f.truncate()
        f.write(job)
    name = re.search(r"^#SBATCH --job-name=(\S+)", script, re.M)
    write(job, state="PENDING", restarts=0, name=name.group(1) if name else "", script=args[-1],
          submitted=time.time())
    # slurmd is no child of the runner, nor in its folder: the job and its daemon live in the state folder
    daemon = subprocess.Popen([sys.executable, __file__, "_daemon", job], start_new_session=True, cwd=state_dir(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    write(job, daemon=daemon.pid)
    print(f"Submitted batch job {job}")
    return 0


def preempt_rule(job: str) -> tuple[str, str] | None:
    """(TEXT, MODE) when FAKE_SLURM_PREEMPT names this job's name and no job of that name was preempted."""
    rule = os.environ.get("FAKE_SLURM_PREEMPT", "")
    if not rule:
        return None
    name, text, mode = rule.split(":", 2)
    if read(job).get("name") != name or (state_dir() / f"preempted-{name}").exists():
        return None
    return text, mode


def daemon(job: str) -> int:
    """The job's life: queue, run, and again after a requeue; its state in its JSON file."""
    become_subreaper()
    write(job, daemon=os.getpid())
    try:
        return run_job(job)
    finally:
        reap()


def run_job(job: str) -> int:
    info = read(job)
    output = re.search(r"^#SBATCH --output=(\S+)", Path(info["script"]).read_text(), re.M)
    out_path = Path(output.group(1).replace("%j", job)) if output else None
    rule = preempt_rule(job)
    while True:
        time.sleep(float(os.environ.get("FAKE_SLURM_QUEUE_SECONDS", "0.3")))  # waiting in the queue
        if job_file(job, "cancel").exists():
            write(job, state="CANCELLED")
            return 0
        restarts = read(job)["restarts"]
        env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_JOB_NAME": info["name"], "SLURM_PROCID": "0",
               "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1",
               "SLURM_JOB_NODELIST": "fakenode1"}
        if restarts:
            env["SLURM_RESTART_COUNT"] = str(restarts)
        proc = subprocess.Popen(["bash", info["script"]], env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        write(job, state="RUNNING", pid=proc.pid)
        requeue = False
        while proc.poll() is None:
            time.sleep(0.05)
            reap(keep=proc.pid)
            if job_file(job, "cancel").exists():
                end_attempt(job)
                proc.wait()
                write(job, state="CANCELLED", pid=None)
                return 0
            if job_file(job, "requeue").exists():  # scontrol requeue, or a preemption by hand
                job_file(job, "requeue").unlink()
                requeue = True
            elif rule and restarts == 0 and out_path and out_path.exists() and rule[0] in out_path.read_text(errors="replace"):
                (state_dir() / f"preempted-{info['name']}").touch()
                requeue = rule[1] == "requeue"
                if not requeue:
                    write(job, state="PREEMPTED")
                    end_attempt(job)
                    proc.wait()
                    write(job, state="PREEMPTED", pid=None)
                    return 0
            if requeue:
                write(job, state="PREEMPTED")
                end_attempt(job)
                proc.wait()
                break
        # the batch script has ended: the job ends once the last of its processes has (its cgroup)
        end_attempt(job, grace=0.0)
        if requeue:
            write(job, state="REQUEUED", restarts=restarts + 1, pid=None)
            continue
        write(job, state="COMPLETED" if proc.returncode == 0 else "FAILED", pid=None, exit=proc.returncode)
        return 0


def srun(args: list[str]) -> int:
    """Run the command with --output/--error (%j, %t filled in) appended to, as srun's one task does."""
    opts: dict[str, str] = {}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("--output", "--error", "-o", "-e"):
            opts[flag.lstrip("-")[0]] = args.pop(0).replace("%j", os.environ.get("SLURM_JOB_ID", "0")).replace("%t", "0")
    for key, fd in (("o", 1), ("e", 2)):
        if key in opts:
            target = os.open(opts[key], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
            os.close(target)
    os.execvp(args[0], args)
    return 127


def stop_all() -> None:
    """End every job and its daemon (a test's finally): the job's processes first, while the
    daemon still holds them together, then the daemon."""
    for job in jobs():
        daemon = read(job).get("daemon")
        if daemon and alive(daemon):
            os.kill(daemon, signal.SIGSTOP)  # no new attempt meanwhile
            end_attempt(job, grace=0.2)
            send([daemon], signal.SIGKILL)


def processes() -> list[int]:
    """Every process of this fake Slurm still alive: its daemons, its jobs' processes, and any
    command of it (sbatch, srun, ...) still running."""
    found = set()
    for job in jobs():
        daemon = read(job).get("daemon")
        if daemon and alive(daemon):
            found.update([daemon, *job_processes(job)])
    needle = f"FAKE_SLURM_DIR={state_dir()}\0".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if b"\0" + needle in b"\0" + (entry / "environ").read_bytes() + b"\0" and alive(int(entry.name)):
                    found.add(int(entry.name))
    return sorted(found)


def sacct(args: list[str]) -> int:
    wanted = [args[i + 1] for i, a in enumerate(args) if a == "-j"] or jobs()
    print("JobID|State|NodeList")
    for job in wanted:
        state = read(job).get("state")
        if state:
            print(f"{job}|{state}|fakenode1")
            print(f"{job}.batch|{state}|fakenode1")
    return 0


def squeue(args: list[str]) -> int:
    wanted = [args[i + 1] for i, a in enumerate(args) if a == "-j"] or jobs()
    for job in wanted:
        state = read(job).get("state")
        if state in ACTIVE:
            print(f"{job} {state}")
    return 0


def scancel(args: list[str]) -> int:
    sig = args[args.index("--signal") + 1] if "--signal" in args else None
    for job in (a for a in args if a.isdigit()):
        if sig:
            signal_job(job, getattr(signal, sig if sig.startswith("SIG") else f"SIG{sig}"))
        elif read(job).get("state") in ACTIVE:
            job_file(job, "cancel").write_text(str(time.time()))  # when: a test checks what came first
            signal_job(job, signal.SIGTERM)  # at once, as slurmstepd does; the daemon SIGKILLs the rest
    return 0


def scontrol(args: list[str]) -> int:
    if args[:1] == ["requeue"]:
        for job in args[1:]:
            job_file(job, "requeue").touch()
    return 0


def preempt(args: list[str]) -> int:
    job = args[0]
    if "--no-requeue" in args:
        (state_dir() / f"preempted-{read(job).get('name')}").touch()
        write(job, state="PREEMPTED")
        end_attempt(job)
    else:
        job_file(job, "requeue").touch()
    return 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "_daemon":
        return daemon(args[0])
    return {"sbatch": sbatch, "srun": srun, "sacct": sacct, "squeue": squeue, "scancel": scancel,
            "scontrol": scontrol, "preempt": preempt}[command](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
