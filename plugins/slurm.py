"""slurm: ``executor = "slurm"`` runs each run of the workload as a Slurm job, submitted with submitit.

    executor            = "slurm"             # or --executor slurm
    slurm_partition     = "gpu"               # default: the cluster's default partition
    slurm_gpus_per_node = 1                   # default: the gpus setting
    slurm_time          = 30                  # the job's time limit in minutes; default: the run's timeout

A run is one job. Its files (the commit's, read from git's object store) are pickled once per
commit into the run's folder, which must be on a filesystem the nodes share (as the project, the
interpreter and the data must be); the job writes them into a temporary folder on its node and runs
the command there in the sandbox, in a process group of its own. Its output goes to the job's log
file, which the runner follows while it runs: progress, the live line, pruning and the metrics work
as with the local executor. The time limit counts from the moment the job starts, not while it waits
in the queue. On the timeout, Ctrl-C, SIGTERM and a prune the job is cancelled (``scancel``).

A preempted job: when Slurm requeues it (the same job id, run again from the start), the attempt
that was cut short is recorded as interrupted (an ``interrupted-run`` entry in the ledger and a
note in the log, whose output starts again) and the runner follows the requeued attempt, whose
result is the run's; when the job ends preempted without a requeue, it is submitted again (at most
RESUBMITS times, then the run is recorded as interrupted). One run is never counted twice, nor lost.
submitit is imported only when this executor is chosen.
"""
from __future__ import annotations

import os
import pickle
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.errors import UsageError
from autoresearch.plugins.slurm_run import MARK, SlurmRun

CLUSTERS = ("slurm", "local")
NODE_OWN = ("OMP_NUM_THREADS", "AUTORESEARCH_THREADS", "CUDA_VISIBLE_DEVICES")  # this machine's worker split: not the node's
IN_FLIGHT = "in-flight"  # in the session's slurm folder: the ids of the jobs not yet ended, one a line
TERMINATED_WAIT = 300.0  # seconds a job Slurm terminated waits for its SIGKILL (KillWait, GraceTime) before it exits


def check_options(options: list[str]) -> str | None:
    for item in options:
        name = str(item).lstrip("-").partition("=")[0]
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            return f"{item!r} is not an sbatch option (write name=value, e.g. \"account=ml\" or \"qos=high\")"
    return None


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("slurm_partition", "--slurm-partition", default="",
                      help="the Slurm partition each run's job asks for (sbatch --partition); default: the "
                           "cluster's default")
    parser.addsetting("slurm_gpus_per_node", type="int", default=None, range=(0, 1024),
                      help="GPUs each run's job asks for (sbatch --gpus-per-node; 0: none); default: the gpus "
                           "setting")
    parser.addsetting("slurm_time", type="int", default=None, range=(1, 525600),
                      help="each run's job's time limit in minutes (sbatch --time); default: the run's timeout, "
                           "rounded up, plus 5 (the runner cancels the job at its own timeout anyway)")
    parser.addsetting("slurm_options", type="list", default=[], check=check_options,
                      help="more sbatch options for each run's job, as name=value: [\"account=ml\", "
                           "\"qos=high\", \"constraint=a100\"]")
    parser.addsetting("slurm_setup", type="list", default=[],
                      help="shell lines each run's job runs before the workload (module load cuda/12.4, "
                           "source ~/venv/bin/activate)")
    parser.addsetting("slurm_cluster", default="slurm", choices=CLUSTERS,
                      help="slurm: submit to the cluster with sbatch; local: submitit's local executor, each "
                           "job a process on this machine (to try a set-up without a cluster)")


def job_main(tree_path: str, cmd: list[str], env: dict[str, str], spec: dict, passed: list[str],
             pid_path: str, nonce: str = "") -> int:
    """The job, on its node: write the commit's files into a fresh folder, run the command there in
    the sandbox `spec` describes with a clean environment, its output to the job's log file (this
    process's stdout) between an ``attempt`` and an ``exit`` marker; return its exit code.

    A cancel (SIGINT from submitit's local executor, SIGTERM from scancel reaching the workload) or
    submitit's preemption handling (SystemExit) kills the workload's process group on the way out.
    """
    import socket
    import tempfile

    from autoresearch import isolation, runfolder

    terminated = watch_signals()
    attempt = os.environ.get("SLURM_RESTART_COUNT", "0")
    out = sys.stdout
    mark = MARK.decode() + (f"{nonce} " if nonce else "")  # the workload never sees the nonce: it cannot forge one
    out.write(f"{mark}attempt={attempt} host={socket.gethostname()} job={job_id()}\n")
    out.flush()
    folder = Path(tempfile.mkdtemp(prefix="autoresearch-slurm-"))
    proc = None
    try:
        with open(tree_path, "rb") as f:
            tree = pickle.load(f)
        runfolder.write(tree, folder)
        argv = isolation.launcher_argv({**spec, "cwd": str(folder), "writable": [str(folder)], "readonly": []},
                                       [a.replace("{workdir}", str(folder)) for a in cmd])
        try:
            proc = subprocess.Popen(argv, cwd=folder, stdout=out.fileno(), stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=isolation.clean_env(env, str(folder), passed),
                                    start_new_session=True)
        except OSError as exc:  # the command cannot start on this node: a crash with its reason
            out.write(f"autoresearch: cannot start {cmd[0]} on {socket.gethostname()}: {exc}\n")
            rc = 127
        else:
            Path(pid_path).write_text(str(proc.pid))
            rc = proc.wait()
            if rc in (-signal.SIGTERM, -signal.SIGKILL):
                time.sleep(1.0)  # Slurm signals the job's processes one by one: ours may come later
        return finish(out, rc, bool(terminated), mark)
    finally:
        if proc is not None and proc.poll() is None:
            from autoresearch.supervise import kill_group

            kill_group(proc.pid, grace=1.0, proc=proc)
            proc.wait()
        isolation.remove(folder)


def watch_signals() -> list[int]:
    """In the job: SIGINT raises again (a cancel, even when started with SIGINT ignored); a SIGTERM
    is noted in the list returned, then handled as before (submitit's handler lets its own
    preemption handling run)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    terminated: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame) -> None:
        terminated.append(signum)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
    return terminated


def finish(out, rc: int, terminated: bool, mark: str = MARK.decode()) -> int:
    """The workload's end, in the job's log: its exit code, or, when Slurm is ending the job
    (scancel, a preemption), no result at all; the job's state then says what comes next."""
    if terminated:
        out.write(f"{mark}terminated={rc}\n")
        out.flush()
        time.sleep(TERMINATED_WAIT)  # until Slurm's SIGKILL: a result now would end a job that is requeued
        raise SystemExit(143)
    out.write(f"{mark}exit={rc}\n")
    out.flush()
    return rc


def job_id() -> str:
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or "?"


class SlurmExecutor:
    def __init__(self, config) -> None:
        self.config = config
        self.submitit = None
        self.executor = None
        self.folder: Path | None = None
        self.trees: dict[str, str] = {}  # commit -> the pickle of its files, written once per commit
        self.lock = threading.Lock()  # workers submit from their threads: parameters and submission as one step

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        try:
            import submitit
        except ImportError:
            raise UsageError("executor = \"slurm\" needs submitit: pip install 'autoresearch[slurm]'") from None
        cluster = self.config.get("slurm_cluster")
        missing = [c for c in ("sbatch", "srun", "sacct", "scancel") if shutil.which(c) is None]
        if cluster == "slurm" and missing:
            raise UsageError(f"executor = \"slurm\": {missing[0]} is not on PATH: run autoresearch where Slurm's "
                             "commands are (a login node), or set slurm_cluster = \"local\" to try it here")
        self.submitit = submitit
        self.folder = session.run_dir / "slurm"
        (self.folder / "trees").mkdir(parents=True, exist_ok=True)
        self.cancel_left_behind(cluster)
        self.executor = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
        options = dict(str(o).lstrip("-").partition("=")[::2] for o in self.config.get("slurm_options") or [])
        gpus = self.config.get("slurm_gpus_per_node")
        self.executor.update_parameters(
            gpus_per_node=self.config.get("gpus") if gpus is None else gpus,
            **({"slurm_partition": self.config.get("slurm_partition")} if self.config.get("slurm_partition") else {}),
            **({"slurm_additional_parameters": {k: v or True for k, v in options.items()}} if options else {}),
            **({"slurm_setup": list(self.config.get("slurm_setup"))} if self.config.get("slurm_setup") else {}))

    def cancel_left_behind(self, cluster: str) -> None:
        """The jobs a runner killed outright (SIGKILL, a lost node) left in flight: cancelled before
        --resume runs their experiments again, so no run is computed twice."""
        path = self.folder / IN_FLIGHT
        left = path.read_text().split() if path.exists() else []
        if left and cluster == "slurm":
            subprocess.run(["scancel", *left], capture_output=True, timeout=120)
        path.unlink(missing_ok=True)

    def in_flight(self, add: list[str] = (), remove: list[str] = ()) -> None:
        """Keep the file of the session's jobs in flight (job ids, one a line) up to date."""
        with self.lock:
            path = self.folder / IN_FLIGHT
            jobs = [j for j in (path.read_text().split() if path.exists() else []) if j not in remove] + list(add)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(f"{j}\n" for j in jobs))
            os.replace(tmp, path)

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder / "trees", ignore_errors=True)

    def tree_path(self, experiment) -> str:
        """The pickle of the experiment's files, written once per commit (fresh each run without git)."""
        from autoresearch.execute import tree

        session = experiment.session
        commit = "" if session.scratch else (experiment.commit or session.tip)
        if commit and commit in self.trees:
            return self.trees[commit]
        path = self.folder / "trees" / (f"{commit}.pkl" if commit else f"scratch-{experiment.label}.pkl")
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(tree(experiment), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        if commit:
            self.trees[commit] = str(path)
        return str(path)

    def submit(self, experiment, limit: float, nonce: str = ""):
        """Submit one run of the experiment as a job; returns submitit's Job."""
        from autoresearch import isolation, procs
        from autoresearch.execute import command, run_env

        session, config = experiment.session, self.config
        # the node's own share: the GPUs Slurm allocated (CUDA_VISIBLE_DEVICES in the job), its cores.
        # On a cluster the job's processes are Slurm's to stop (scancel; on --resume, those of the
        # in-flight file): without the runner's marker, whose hunt on a resume would kill a workload
        # on this machine before the scancel, and its job would end COMPLETED, not CANCELLED
        own = NODE_OWN + (procs.MARKER,) if config.get("slurm_cluster") == "slurm" else NODE_OWN
        env = {k: v for k, v in run_env(experiment).items() if k not in own}
        spec = isolation.spec(session.sandbox, config, Path("."))  # the job fills in its own folder
        minutes = config.get("slurm_time") or int(-(-limit // 60)) + 5
        pid_path = self.folder / f"{experiment.label}-{experiment.seed}.pid"
        args = (self.tree_path(experiment), command(config, experiment, workdir="{workdir}"), env, spec,
                list(config.get("pass_env") or []), str(pid_path), nonce)
        with self.lock:
            self.executor.update_parameters(name=f"autoresearch-{experiment.label}", timeout_min=minutes)
            try:
                job = self.executor.submit(job_main, *args)
            except Exception as exc:  # sbatch refused it (a bad partition, option or limit): one clear line
                why = " ".join(str(exc).split())[:400]
                raise UsageError(f"executor = \"slurm\": the job for {experiment.label} was not submitted: {why}") from None
        self.in_flight(add=[str(job.job_id)])
        return job

    @hookimpl(tryfirst=True)
    def autoresearch_experiment_run(self, experiment):
        from dataclasses import replace

        from autoresearch import interrupts
        from autoresearch.execute import overrun, stop_reason, supervise, timeout
        from autoresearch.reports import Cause

        session, config = experiment.session, self.config
        limit = timeout(config, experiment)

        def on_progress(elapsed: float, line: str, loss: float | None) -> str | None:
            return stop_reason(config.hook.autoresearch_experiment_progress(
                experiment=experiment, elapsed=elapsed, line=line, loss=loss))

        def on_interrupted(entry: dict) -> None:  # an attempt cut short by preemption: in the ledger
            session.ledger.append({"event": "interrupted-run", "seq": experiment.seq, "nodeid": experiment.nodeid,
                                   "label": experiment.label, "seed": experiment.seed, **entry})

        log_path = experiment.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w+b") as log:
            run = None
            try:  # submitted and known as one step: a stop meanwhile cancels the job it made
                with interrupts.critical():
                    nonce = secrets.token_hex(16)  # in the job's markers, never in the workload's environment
                    run = SlurmRun(lambda: self.submit(experiment, limit, nonce), log, on_interrupted, nonce=nonce,
                                   local=self.config.get("slurm_cluster") == "local",
                                   pid_path=str(self.folder / f"{experiment.label}-{experiment.seed}.pid"))
            except BaseException:
                if run is not None:
                    run.kill(grace=0.0)
                    self.in_flight(remove=run.job_ids)
                raise
            try:
                result = supervise(run, log_path, limit, on_progress, experiment.should_stop)
            finally:
                self.in_flight(remove=run.job_ids)
        if run.gave_up:
            result = replace(result, returncode=None, cause=Cause.INTERRUPTED, message=run.gave_up)
        return replace(result, seed=experiment.seed, overrun=overrun(config, result.duration))


@hookimpl
def autoresearch_configure(config) -> None:
    if config.get("executor") == "slurm":  # registered only when chosen: submitit is imported only then
        config.pluginmanager.register(SlurmExecutor(config), "slurm-executor")
