"""ray: ``executor = "ray"`` runs each run of the workload as a Ray task, on any node of a cluster.

    executor    = "ray"                   # or --executor ray
    ray_address = "ray://head:10001"      # default: start a local Ray for the session

The task gets the experiment's commit as ``git archive`` bytes, unpacks it into a temporary folder
on its node, and runs the workload command there in a process group of its own, asking Ray for
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
import time
from dataclasses import replace

from autoresearch import hookimpl
from autoresearch.errors import Stopped, UsageError
from autoresearch.reports import Cause, RunResult

CHUNK_SECONDS = 0.2  # how often a task sends its new output back


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("executor", "--executor", default="local", choices=("local", "ray"),
                      help="where each run of the workload runs: local (a process here) or ray (a Ray task)")
    parser.addsetting("ray_address", "--ray-address", default="",
                      help="the Ray cluster for executor = ray, as ray.init takes it (default: a local Ray "
                           "started for the session)")


def workload(archive: bytes, cmd: list[str], env: dict[str, str]):
    """The Ray task: unpack the commit, run the command in its own process group, stream its output.

    Yields chunks of output (bytes), then ``("exit", returncode)``. Cancelling the task raises in
    it within CHUNK_SECONDS, and the process group is killed on the way out.
    """
    import io
    import select
    import shutil
    import tarfile
    import tempfile

    folder = tempfile.mkdtemp(prefix="autoresearch-ray-")
    proc = None
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **env}, start_new_session=True)
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
        shutil.rmtree(folder, ignore_errors=True)


class RayExecutor:
    def __init__(self, config) -> None:
        self.config = config
        self.ray = None
        self.task = None
        self.gpus = 0
        self.started_ray = False

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
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"ray_address = {address!r}: cannot connect to Ray ({exc})") from None
            self.started_ray = True
        self.task = ray.remote(num_returns="streaming")(workload)
        # each run asks for the gpus setting's GPUs, where the cluster has any
        self.gpus = (self.config.get("gpus") or 0) if ray.cluster_resources().get("GPU", 0) else 0

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.started_ray and self.ray is not None:
            self.ray.shutdown()

    @hookimpl(tryfirst=True)
    def autoresearch_experiment_run(self, experiment) -> RunResult:
        from autoresearch.execute import command, progress, read_tail, run_env, stop_reason, timeout

        session, config, ray = experiment.session, self.config, self.ray
        commit = experiment.commit or session.tip
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=experiment.workdir,
                                 capture_output=True, check=True).stdout
        env = {k: v for k, v in run_env(experiment).items() if k not in ("OMP_NUM_THREADS", "AUTORESEARCH_THREADS")}
        stream = self.task.options(num_gpus=self.gpus).remote(ray.put(archive), command(config, experiment, workdir="."), env)  # type: ignore[union-attr]
        log_path = experiment.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        limit, start = timeout(config), time.monotonic()
        returncode: int | None = None
        try:
            with open(log_path, "wb") as log:
                while returncode is None:
                    elapsed = time.monotonic() - start
                    if elapsed > limit:
                        ray.cancel(stream)
                        return RunResult(None, elapsed, str(log_path), cause=Cause.TIMEOUT,
                                         message=f"timeout: killed after {elapsed:.0f}s (limit {limit:.0f}s)")
                    if experiment.should_stop():
                        raise Stopped()
                    ready, _ = ray.wait([stream], timeout=0.5)
                    if ready:
                        try:
                            item = ray.get(next(stream))
                        except StopIteration:
                            returncode = -1
                            break
                        if isinstance(item, tuple):
                            returncode = item[1]
                        else:
                            log.write(item)
                            log.flush()
                    line, loss = progress(read_tail(log_path))
                    reason = stop_reason(config.hook.autoresearch_experiment_progress(
                        experiment=experiment, elapsed=time.monotonic() - start, line=line, loss=loss))
                    if reason:  # pruned: the task's process group is killed, the run is a decision
                        ray.cancel(stream)
                        return replace(RunResult(None, time.monotonic() - start, str(log_path), cause=Cause.PRUNED,
                                                 message=reason), seed=experiment.seed)
        except BaseException:
            ray.cancel(stream)  # the task's process group is killed on its way out
            raise
        return replace(RunResult(returncode, time.monotonic() - start, str(log_path),
                                 signal=-returncode if returncode < 0 else None), seed=experiment.seed)


@hookimpl
def autoresearch_configure(config) -> None:
    if config.get("executor") == "ray":  # registered only when chosen: ray is imported only then
        config.pluginmanager.register(RayExecutor(config), "ray-executor")
