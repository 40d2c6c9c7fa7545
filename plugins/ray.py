"""ray: ``executor = "ray"`` runs each run of the workload as a Ray task, on any node of a cluster.

    executor    = "ray"                   # or --executor ray
    ray_address = "ray://head:10001"      # default: start a local Ray for the session

The task gets the experiment's files (read from git's object store once per commit and put in
Ray's object store once per commit, whichever node runs it and however many runs it has; a worker
fetches them once per commit and keeps its process for the session), writes them into a temporary
folder on its node, and runs the workload command there in a process group of its own, asking Ray for
``gpus`` GPUs (Ray sets CUDA_VISIBLE_DEVICES). Its output streams back into the local log while it
runs, so progress, the live line, metrics and early stopping work as with the local executor. On
the timeout, Ctrl-C or SIGTERM the task is cancelled and its process group killed.

What is not in the commit is not there: data the workload reads (the prepared corpus, a folder
git ignores) must exist at the same path on every node, or on a shared filesystem, and so must
the command's interpreter. ray is imported only when this executor is chosen.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.errors import UsageError
from autoresearch.reports import RunResult

CHUNK_SECONDS = 0.2  # how often a task sends its new output back


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("executor", "--executor", default="local", choices=("local", "ray", "slurm"),
                      help="where each run of the workload runs: local (a process here), ray (a Ray task) or "
                           "slurm (a Slurm job)")
    parser.addsetting("ray_address", "--ray-address", default="",
                      help="the Ray cluster for executor = ray, as ray.init takes it (default: a local Ray "
                           "started for the session)")


#: in a Ray worker: the files of the last few commits it ran (by object id), so that a commit's runs
#: on one worker fetch and unpickle them once (the worker process itself lives for the session)
TREES: dict[str, object] = {}


def workload(tree_ref: list, cmd: list[str], env: dict[str, str], spec: dict, passed: list[str]):
    """The Ray task: write the commit's files (a :class:`autoresearch.runfolder.Tree`, in Ray's
    object store as ``tree_ref[0]``: inside a list, Ray leaves it to the task to fetch, once per
    commit per worker) into a fresh folder, run the command there in the sandbox `spec` describes
    (as the local executor does), with a clean environment, and stream its output.

    Yields a line naming the node, chunks of output (bytes), then ``("exit", returncode)``.
    Cancelling the task raises in it within CHUNK_SECONDS, and the process group is killed on the way out.
    """
    import select
    import tempfile

    import ray

    from autoresearch import isolation, runfolder

    key = tree_ref[0].hex()
    if key not in TREES:
        while len(TREES) >= 4:
            TREES.pop(next(iter(TREES)))
        TREES[key] = ray.get(tree_ref[0])
    context = ray.get_runtime_context()
    yield f"[autoresearch: Ray task on node {ray.util.get_node_ip_address()} ({context.get_node_id()})]\n".encode()
    folder = Path(tempfile.mkdtemp(prefix="autoresearch-ray-"))
    proc = None
    try:
        runfolder.write(TREES[key], folder)
        argv = isolation.launcher_argv({**spec, "cwd": str(folder), "writable": [str(folder)],
                                        "readonly": []}, [a.replace("{workdir}", str(folder)) for a in cmd])
        proc = subprocess.Popen(argv, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=isolation.clean_env(env, str(folder), passed),
                                start_new_session=True)
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            ready, _, _ = select.select([fd], [], [], CHUNK_SECONDS)
            if ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                yield data
        yield ("exit", proc.wait())
    except OSError as exc:  # the command cannot start on this node: a crash with its reason
        yield f"autoresearch: cannot start {cmd[0]} on the Ray node: {exc}\n".encode()
        yield ("exit", 127)
    finally:
        if proc is not None and proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(0.5 if sig == signal.SIGTERM else 0)
            proc.wait()
        isolation.remove(folder)


class RayRun:
    """A run as a Ray task, for :func:`autoresearch.execute.supervise`: its output is pulled into the
    log while waiting; killing it cancels the task (whose process group is killed on its node)."""

    def __init__(self, ray, stream, log) -> None:
        self.ray, self.stream, self.log = ray, stream, log

    def wait(self, seconds: float) -> int | None:
        ready, _ = self.ray.wait([self.stream], timeout=seconds)
        if not ready:
            return None
        try:
            item = self.ray.get(next(self.stream))
        except StopIteration:
            return -1
        if isinstance(item, tuple):
            return item[1]
        self.log.write(item)
        self.log.flush()
        return None

    def kill(self, grace: float = 2.0) -> None:
        self.ray.cancel(self.stream)

    def close(self) -> None:
        pass


class RayExecutor:
    def __init__(self, config) -> None:
        self.config = config
        self.ray = None
        self.task = None
        self.gpus = 0
        self.started_ray = False
        self.trees: dict[str, object] = {}  # commit -> the Ray object of its files (the last few commits)
        self.lock = threading.Lock()

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("executor = \"ray\" needs Ray: pip install 'autoresearch[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            address = self.config.get("ray_address") or None
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         **({} if address else {"num_cpus": max(session.workers, os.cpu_count() or 1)}))
            except Exception as exc:  # noqa: BLE001 Ray raises a bare Exception when its node times out at start-up
                said = " ".join(str(exc).split())[:300] or type(exc).__name__
                raise UsageError(f"ray_address = {address!r}: cannot connect to Ray ({said})" if address else
                                 f"executor = \"ray\": a local Ray did not start ({said}); on a busy machine, try "
                                 "again, or start one with `ray start --head` and set ray_address") from None
            self.started_ray = True
        # max_calls=0: a worker runs any number of runs (Ray's default for a task given GPUs is one
        # run per worker process, each paying its start-up): the workload, a process of its own, holds the GPU
        self.task = ray.remote(num_returns="streaming", max_calls=0)(workload)
        # each run asks for the gpus setting's GPUs, where the cluster has any
        self.gpus = (self.config.get("gpus") or 0) if ray.cluster_resources().get("GPU", 0) else 0

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.started_ray and self.ray is not None:
            self.ray.shutdown()

    @hookimpl(tryfirst=True)
    def autoresearch_experiment_run(self, experiment) -> RunResult:
        from autoresearch import isolation
        from autoresearch.execute import command, overrun, run_env, stop_reason, supervise, timeout

        session, config, ray = experiment.session, self.config, self.ray
        commit = experiment.commit or session.tip
        with self.lock:  # workers' threads: one put per commit
            if commit not in self.trees:
                while len(self.trees) >= 4:
                    self.trees.pop(next(iter(self.trees)))
                self.trees[commit] = ray.put(isolation.archive(config, commit))
        # the node's own share: the GPUs Ray gave the task (it sets CUDA_VISIBLE_DEVICES), its cores
        env = {k: v for k, v in run_env(experiment).items()
               if k not in ("OMP_NUM_THREADS", "AUTORESEARCH_THREADS", "CUDA_VISIBLE_DEVICES")}
        spec = isolation.spec(session.sandbox, config, Path("."))  # the task fills in its own folder
        stream = self.task.options(num_gpus=self.gpus).remote(  # type: ignore[union-attr]
            [self.trees[commit]], command(config, experiment, workdir="{workdir}"), env, spec,
            list(config.get("pass_env") or []))
        log_path = experiment.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)

        def on_progress(elapsed: float, line: str, loss: float | None) -> str | None:
            return stop_reason(config.hook.autoresearch_experiment_progress(
                experiment=experiment, elapsed=elapsed, line=line, loss=loss))

        with open(log_path, "wb") as log:
            result = supervise(RayRun(ray, stream, log), log_path, timeout(config, experiment), on_progress,
                               experiment.should_stop)
        return replace(result, seed=experiment.seed, overrun=overrun(config, result.duration))


@hookimpl
def autoresearch_configure(config) -> None:
    if config.get("executor") == "ray":  # registered only when chosen: ray is imported only then
        config.pluginmanager.register(RayExecutor(config), "ray-executor")
