"""A run as a Slurm job (submitit's), for :func:`autoresearch.supervise.supervise`: its log file
followed into the run's log, its state asked of Slurm now and then, ``scancel`` to kill it.

The job writes marker lines around the workload's output (``attempt=N host=H`` when an attempt
starts, ``exit=RC`` when the workload has exited); they never reach the run's log. An attempt
after the first (``SLURM_RESTART_COUNT`` > 0) means Slurm requeued the job after a preemption.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

MARK = b"\x1e[autoresearch-slurm] "  # starts a marker line in the job's log (then the job's nonce: a workload that prints one cannot forge it)
POLL_SECONDS = 0.1  # how often the job's log file is read
STATE_SECONDS = 10.0  # how often Slurm is asked for the job's state (sacct), besides the log
RESUBMITS = 3  # a job that ends preempted without a requeue is submitted again at most this often
KILL_WAIT = 5.0  # seconds a cancelled job gets, beyond the grace, to say its workload exited
#: seconds a job stays PREEMPTED before the runner takes it as ended (and submits it again): a requeued
#: job can show PREEMPTED a while before REQUEUED or PENDING, longer on a busy controller or slurmdbd
PREEMPTED_SETTLE = 10.0
#: states of a job that has not ended: waiting, running, or on its way back to the queue
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "COMPLETING",
          "CONFIGURING", "SIGNALING", "STAGE_OUT", "STOPPED", "READY", "UNKNOWN", "SPECIAL_EXIT"}
WAITING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING"}
#: ended through no fault of the workload: the job is submitted again
CLUSTER_ENDED = {"PREEMPTED", "NODE_FAIL", "BOOT_FAIL"}


class SlurmRun:
    """One run of the workload as a Slurm job (a second one when the first ends preempted without
    a requeue). `submit()` returns a submitit Job; `on_interrupted(entry)` records an attempt that
    preemption cut short; `local`: submitit's local executor, whose workload the runner can kill."""

    def __init__(self, submit, log, on_interrupted, local: bool = False, pid_path: str = "", nonce: str = "") -> None:
        # the job's marker lines carry a nonce the workload never sees: a line it prints that looks like
        # one is its output, never an exit code, a preemption or a new attempt
        self.mark = MARK + (f"{nonce} ".encode() if nonce else b"")
        self.submit, self.log, self.on_interrupted, self.local = submit, log, on_interrupted, local
        self.pid_path = pid_path
        self.resubmits = 0
        self.gave_up = ""  # why the run is recorded as interrupted, when resubmitting gave up
        self.recorded: set[tuple[str, str]] = set()  # the (job, attempt) pairs recorded as interrupted
        self.job_ids: list[str] = []  # every job of this run (a second one after a preemption without a requeue)
        self.start_job(submit())

    def start_job(self, job) -> None:
        self.job = job
        self.job_ids.append(str(job.job_id))
        self.offset = 0
        self.pending = b""
        self.attempt: str | None = None
        self.host = ""
        self.started: float | None = None  # when the current attempt started (None: waiting in the queue)
        self.exit: int | None = None
        self.terminated = False  # the job said Slurm is ending its attempt (scancel, preemption)
        self.preempted_since: float | None = None  # when the job was first seen PREEMPTED (None: not now)
        self.check_every = STATE_SECONDS
        self.next_check = time.monotonic() + STATE_SECONDS

    def elapsed(self) -> float:
        """Seconds the current attempt has run: the time limit does not count the queue."""
        return 0.0 if self.started is None else time.monotonic() - self.started

    # -- the job's log ---------------------------------------------------------------------------

    def pump(self) -> None:
        try:
            with open(self.job.paths.stdout, "rb") as f:
                f.seek(self.offset)
                data = f.read(4 << 20)
        except FileNotFoundError:  # the job has not started yet
            return
        if data:
            self.offset += len(data)
            self.feed(data)
            self.log.flush()

    def feed(self, data: bytes) -> None:
        """Copy the workload's output into the run's log, taking out the marker lines (split across
        reads or not)."""
        buf = self.pending + data
        mark = self.mark
        while (i := buf.find(mark)) >= 0 and (j := buf.find(b"\n", i)) >= 0:
            self.output(buf[:i])
            self.marker(buf[i + len(mark):j].decode("utf-8", errors="replace"))
            buf = buf[j + 1:]
        i = buf.find(mark)
        if i < 0:  # keep back what may be the start of a marker
            i = next((k for k in range(max(0, len(buf) - len(mark) + 1), len(buf)) if mark.startswith(buf[k:])), len(buf))
        self.output(buf[:i])
        self.pending = buf[i:]

    def output(self, data: bytes) -> None:
        """The workload's output, between an attempt's start and its exit (submitit's own lines,
        before and after, stay in the job's log)."""
        if data and self.attempt is not None and self.exit is None:
            self.log.write(data)

    def marker(self, text: str) -> None:
        fields = dict(item.partition("=")[::2] for item in text.split())
        if "exit" in fields:
            self.exit = int(fields["exit"]) if fields["exit"].lstrip("-").isdigit() else 1
            return
        if "terminated" in fields:  # Slurm ended the attempt: ask it every second what comes next
            self.terminated = True
            self.check_every = 1.0
            self.next_check = time.monotonic() + 0.5
            return
        attempt = fields.get("attempt", "0")
        if self.started is not None and attempt != self.attempt:  # the last attempt ended without an exit
            self.interrupted(requeued=True)
        self.attempt, self.host, self.started = attempt, fields.get("host", "?"), time.monotonic()
        self.check_every, self.terminated = STATE_SECONDS, False
        again = f", attempt {int(attempt) + 1} (requeued)" if attempt.isdigit() and int(attempt) else ""
        self.note(f"Slurm job {self.job.job_id}{again} runs on {self.host}")

    def note(self, text: str) -> None:
        self.log.write(f"[autoresearch: {text}]\n".encode())
        self.log.flush()

    def interrupted(self, requeued: bool) -> None:
        """The current attempt was cut short by the cluster: recorded as interrupted (once), and the
        run's log starts again, so nothing of it is counted twice."""
        key = (str(self.job.job_id), self.attempt or "0")
        if key in self.recorded:
            return
        self.recorded.add(key)
        seconds = round(self.elapsed(), 1)
        self.on_interrupted({"status": "interrupted", "job": str(self.job.job_id),
                             "attempt": int(self.attempt) + 1 if (self.attempt or "").isdigit() else 1,
                             "node": self.host, "seconds": seconds, "requeued": requeued})
        self.log.seek(0)
        self.log.truncate()
        then = "Slurm requeued it" if requeued else "it is submitted again"
        self.note(f"Slurm job {self.job.job_id} on {self.host or 'its node'} was preempted after {seconds:.0f}s: that "
                  f"attempt is recorded as interrupted and {then}; the output of the next attempt follows")
        self.started = None  # the time limit waits for the next attempt

    # -- the job's state -------------------------------------------------------------------------

    def state(self) -> str:
        try:
            state = self.job.state if self.local else self.job.watcher.get_state(self.job.job_id, mode="force")
        except Exception:  # sacct failed: unknown for now, asked again later
            return "UNKNOWN"
        return (state or "UNKNOWN").split()[0].upper()

    def wait(self, seconds: float) -> int | None:
        """The workload's exit code once the job has ended, else None after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            self.pump()
            if self.exit is not None:
                return self.exit
            now = time.monotonic()
            if now >= self.next_check or self.job.paths.result_pickle.exists():
                self.next_check = now + self.check_every
                rc = self.ended()
                if rc is not None:
                    return rc
            if now >= deadline:
                return None
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))

    def ended(self) -> int | None:
        """When the job has ended without the workload's exit marker: its exit code, a note in the
        log saying why; None while it waits or runs (or once it is submitted again)."""
        state = "COMPLETED" if self.job.paths.result_pickle.exists() else self.state()
        if state in WAITING:
            self.check_every = STATE_SECONDS  # a queue can be long: no need to ask every second
            if self.started is not None:  # back in the queue: preempted and requeued
                self.interrupted(requeued=True)
        if state != "PREEMPTED":
            self.preempted_since = None
        else:  # requeued or ended: Slurm says which within PREEMPTED_SETTLE seconds, asked every second
            now = time.monotonic()
            self.preempted_since = self.preempted_since or now
            if now - self.preempted_since < PREEMPTED_SETTLE:
                self.check_every = 1.0
                return None
        if state in ACTIVE or (self.local and state == "RUNNING"):
            return None
        self.pump()
        if self.exit is not None:
            return self.exit
        job = self.job.job_id
        if state in CLUSTER_ENDED:
            self.interrupted(requeued=False)
            if self.resubmits < RESUBMITS:
                self.resubmits += 1
                self.start_job(self.submit())
                return None
            self.gave_up = (f"interrupted: Slurm job {job} ended {state} and was submitted again {RESUBMITS} times; "
                            "it runs again on --resume")
            return 1
        if state == "CANCELLED":
            self.note(f"Slurm job {job} was cancelled outside autoresearch (scancel)")
            return -signal.SIGTERM
        if state == "OUT_OF_MEMORY":
            self.note(f"Slurm job {job} ended OUT_OF_MEMORY: out of memory (the job's memory limit)")
            return 1
        if state == "TIMEOUT":
            self.note(f"Slurm job {job} reached its time limit (slurm_time) before the workload finished")
            return 1
        err = Path(self.job.paths.stderr)
        tail = err.read_text(errors="replace").splitlines()[-20:] if err.exists() else []
        if self.job.paths.result_pickle.exists():  # the job's function failed before the workload ended
            try:
                self.job.result()
            except Exception as exc:  # submitit's FailedJobError: the job's traceback
                tail = str(exc).strip().splitlines()[-12:]
        self.log.write("".join(f"{line}\n" for line in tail).encode())
        self.note(f"Slurm job {job} ended {state} before the workload finished (its log: {err})")
        return 1

    # -- stopping it -----------------------------------------------------------------------------

    def kill(self, grace: float = 2.0) -> None:
        """Cancel the job (scancel; the local executor's SIGINT) and wait a little for its end."""
        self.job.cancel(check=False)
        if self.local and self.pid_path:  # its controller ignores SIGINT when the runner does: kill the workload too
            from autoresearch.supervise import kill_group

            try:
                kill_group(int(Path(self.pid_path).read_text()), grace=grace)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + grace + KILL_WAIT
        while time.monotonic() < deadline and self.exit is None and not self.terminated:
            if self.job.paths.result_pickle.exists() or (self.local and self.job.done()):
                break
            time.sleep(POLL_SECONDS)
            self.pump()

    def close(self) -> None:
        if self.pid_path:
            Path(self.pid_path).unlink(missing_ok=True)
