"""mlflow: every session an MLflow run, every experiment a run nested in it.

On when ``mlflow_tracking_uri`` is set (or with ``-p mlflow``, which then uses
``sqlite:///.autoresearch/mlflow.db``); mlflow is imported only then (``pip install
'autoresearch[mlflow]'``), so ``--help`` and every other command stay fast.

- The session's run (named after the tag): tags ``autoresearch.tag``, ``.branch`` and
  ``.initial_commit``; every setting as a parameter.
- One nested run per experiment (named after it): parameters are the whole configuration it ran
  with (every module-level constant with a literal value of the editable files at its commit, as
  the patch kinds name them: ``PatchKind.parameters``), what its patch changed among them (name →
  new value), and the tag ``autoresearch.changed`` names those; metrics are every parsed metric (the mean over its runs) and the loss curve of each
  run as step metrics (``loss`` for the first run, ``loss.run2`` … for the others; the step is
  the percent of the budget done); tags are the status, the verdict's reason, the expectation's
  outcome, the hypothesis, the node id and the commit; artifacts are its logs and its diff.
- A resumed session continues the same session run (its id is kept in the run's folder), and any
  experiment's run a killed runner left RUNNING is ended as KILLED; a session that ends is
  FINISHED, or FAILED / KILLED by how it ended.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from autoresearch.ledger import atomic_write
from autoresearch import hookimpl
from autoresearch.reports import Cause, Status

STATE = "mlflow.json"


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("mlflow_tracking_uri", "--mlflow-tracking-uri", default=None,
                      help="log every session and experiment to MLflow at this tracking URI (an http:// "
                           "server, sqlite:///file.db, a folder); needs pip install 'autoresearch[mlflow]'")
    parser.addsetting("mlflow_experiment", "--mlflow-experiment", default="autoresearch",
                      help="the MLflow experiment the runs go to")


def enabled(config) -> bool:
    return bool(config.get("mlflow_tracking_uri")) or "mlflow" in (config.getoption("plugins") or [])


class MLflowLogger:
    def __init__(self, config) -> None:
        from autoresearch.errors import UsageError

        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError("mlflow_tracking_uri is set but mlflow is not installed: pip install "
                             "'autoresearch[mlflow]' (or unset it)") from None
        self.config = config
        self.uri = config.get("mlflow_tracking_uri") or f"sqlite:///{config.state_dir / 'mlflow.db'}"
        self.client_class = MlflowClient
        self.client: Any = None  # made in preflight, once collection has passed: nothing is written before
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a server that is down: an answer in
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")  # seconds, not minutes of backoff
        self.lock = threading.Lock()
        self.session = None
        self.parent: str | None = None
        self.runs: dict[str, str] = {}  # str(seq) -> the experiment's nested run id

    # -- the session's run --------------------------------------------------------------------

    def state_path(self) -> Path:
        assert self.session is not None
        return self.session.run_dir / STATE

    def save(self) -> None:
        atomic_write(self.state_path(), json.dumps({"parent": self.parent, "runs": self.runs, "uri": self.uri}))

    @hookimpl
    def autoresearch_preflight(self, config) -> None:
        """The store, reached once before anything runs: a wrong URI is one line, not a failed run."""
        from autoresearch.errors import UsageError

        if self.uri.startswith("sqlite:///"):
            from autoresearch.checks import check_store

            path = Path(self.uri[len("sqlite:///"):].split("?")[0])
            path = path if path.is_absolute() else Path.cwd() / path
            real = os.path.realpath(path)
            git_dir = os.path.realpath(config.rootdir / ".git")
            if real == git_dir or real.startswith(git_dir + os.sep) or os.path.isdir(real):
                raise UsageError(f"mlflow_tracking_uri {self.uri!r}: a database file there would be inside .git or "
                                 "is a folder (give a file's path)")
            # not code, a hypothesis, a tracked file, an output, nor any place a path setting names
            check_store(config, f"mlflow_tracking_uri {self.uri!r}", path)
            if os.path.isfile(real):  # sqlite would make any empty file a database, and an empty file is data too
                with open(real, "rb") as f:
                    if f.read(16) != b"SQLite format 3\0":
                        raise UsageError(f"mlflow_tracking_uri {self.uri!r}: {real} exists and is not an SQLite "
                                         "database; a database there would overwrite it (choose another path)")
            Path(real).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = self.client_class(tracking_uri=self.uri)
            self.client.search_experiments(max_results=1)
        except Exception as exc:
            self.client = None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UsageError(f"mlflow_tracking_uri {self.uri!r}: {first} (check the URI, or that the server "
                             "is up)") from None

    def warn(self, exc: Exception, doing: str) -> None:
        """MLflow is a record beside the run, never its master: a failure is a warning, and the run goes on."""
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"autoresearch: warning: mlflow: {doing} failed ({type(exc).__name__}: {first}); the run goes on, "
              "its MLflow record is incomplete", file=sys.stderr)

    @hookimpl(trylast=True)
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session
        if self.client is None:  # no preflight (a plugin replaced the session's start): nothing to log to
            return
        try:
            self.open_session(session)
        except Exception as exc:
            self.parent = None
            self.warn(exc, "opening the session's run")

    def open_session(self, session) -> None:
        state = {}
        if self.state_path().is_file():
            try:
                state = json.loads(self.state_path().read_text())
            except (OSError, ValueError):
                state = {}
        self.parent, self.runs = state.get("parent"), dict(state.get("runs") or {})
        if self.parent is not None:  # a resumed session: the same run, and nothing left RUNNING
            self.client.update_run(self.parent, status="RUNNING")
            unlogged = {str(r.seq) for r in session.unlogged}  # done before the kill: logged in a moment
            for seq, run_id in self.runs.items():
                if seq not in unlogged and self.client.get_run(run_id).info.status == "RUNNING":
                    self.client.set_terminated(run_id, status="KILLED")
            return
        name = self.config.get("mlflow_experiment")
        found = self.client.get_experiment_by_name(name)
        local = not self.uri.startswith(("http://", "https://", "databricks"))
        artifacts = (self.config.state_dir / "mlartifacts").resolve().as_uri() if local else None
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            name, artifact_location=artifacts)  # a local store's artifacts stay in the ignored state folder
        run = self.client.create_run(experiment_id, run_name=session.tag, tags={
            "autoresearch.tag": session.tag, "autoresearch.branch": session.branch or "",
            "autoresearch.initial_commit": session.initial_commit or session.tip or ""})
        self.parent = run.info.run_id
        self.save()
        from mlflow.entities import Param

        settings = dict(sorted(self.config.settings().items()))
        params = [Param(k, str(v)[:6000]) for k, v in settings.items() if v not in (None, [], {}, "")]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.parent, params=params[i:i + 100])

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        if self.parent is None:
            return
        status = {0: "FINISHED", 130: "KILLED", 143: "KILLED", 141: "KILLED"}.get(int(exitstatus), "FAILED")
        try:
            self.client.set_terminated(self.parent, status=status)
        except Exception as exc:
            self.warn(exc, "ending the session's run")

    # -- one nested run per experiment --------------------------------------------------------

    @hookimpl
    def autoresearch_experiment_logstart(self, experiment) -> None:
        if self.parent is not None:
            with self.lock:  # workers log from their threads: one at a time
                try:
                    self.start(experiment)
                except Exception as exc:
                    self.warn(exc, f"starting the run of {experiment.nodeid}")

    def start(self, experiment) -> None:
        h = experiment.hypothesis
        tags = {"mlflow.parentRunId": self.parent, "autoresearch.nodeid": experiment.nodeid,
                "autoresearch.hypothesis": (h.hypothesis if h else "the unmodified baseline")[:5000],
                "autoresearch.status": "running"}
        experiment_id = self.client.get_run(self.parent).info.experiment_id
        run = self.client.create_run(experiment_id, run_name=f"{experiment.seq:03d}-{experiment.name}", tags=tags)
        old = self.runs.get(str(experiment.seq))
        self.runs[str(experiment.seq)] = run.info.run_id
        self.save()
        if old and self.client.get_run(old).info.status == "RUNNING":
            self.client.set_terminated(old, status="KILLED")

    @hookimpl
    def autoresearch_experiment_logreport(self, report) -> None:
        if self.parent is not None:
            with self.lock:
                try:
                    self.finish(report)
                except Exception as exc:
                    self.warn(exc, f"logging {report.nodeid}")

    def finish(self, report) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run_id = self.runs.get(str(report.seq))
        if run_id is None:  # logged again on resume, after its run was ended: nothing new to say
            return
        if self.client.get_run(run_id).info.status != "RUNNING":
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in report.metrics.items() if isinstance(v, (int, float))]
        for i, run in enumerate(report.runs):
            key = "loss" if i == 0 else f"loss.run{i + 1}"
            metrics += [Metric(key, y, now, int(round(100 * x))) for x, y in self.curve(run.log_path)]
        full = {**self.configuration(report), **{name: str(new) for name, _, new in report.changes}}
        # a param's name as MLflow allows it: a keys path may quote a key with any character in it
        params = [Param(re.sub(r"[^\w.\- ]", "_", name)[:250], value[:6000]) for name, value in full.items()]
        tags = [RunTag("autoresearch.status", str(Cause.PRUNED if report.pruned else report.status)),
                RunTag("autoresearch.reason", report.reason[:5000]),
                RunTag("autoresearch.expectation", report.expectation or "none"),
                RunTag("autoresearch.commit", report.commit or ""),
                RunTag("autoresearch.description", report.description),
                RunTag("autoresearch.changed", ", ".join(name for name, _, _ in report.changes)[:5000])]
        for i in range(0, max(len(metrics), 1), 900):
            self.client.log_batch(run_id, metrics=metrics[i:i + 900], params=params if i == 0 else [],
                                  tags=tags if i == 0 else [])
        for run in report.runs:
            if run.log_path and Path(run.log_path).is_file():
                self.client.log_artifact(run_id, run.log_path, artifact_path="logs")
        diff = self.diff(report)
        if diff:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "experiment.diff"
                path.write_text(diff)
                self.client.log_artifact(run_id, str(path))
        status = {Status.KEEP: "FINISHED", Status.DISCARD: "FINISHED", Status.CRASH: "FAILED"}.get(report.status, "KILLED")
        self.client.set_terminated(run_id, status=status)

    def configuration(self, report) -> dict[str, str]:
        """The whole configuration the run used: every patch kind's parameters of the editable files
        at its commit (``set``: every module-level constant with a literal value)."""
        if not report.commit:
            return {}
        from autoresearch.compare import configuration_at

        return configuration_at(self.config, report.commit)

    def curve(self, log_path: str) -> list[tuple[float, float]]:
        """The run's learning curve as the prune plugin kept it (share of the budget, loss)."""
        if not log_path or self.session is None:
            return []
        from autoresearch.plugins.prune import read_curve

        return read_curve(self.session.run_dir / "curves" / f"{Path(log_path).stem}.tsv")

    def diff(self, report) -> str:
        if not report.commit or not report.baseline_commit or report.commit == report.baseline_commit:
            return ""
        proc = subprocess.run(["git", "diff", report.baseline_commit, report.commit], cwd=self.config.rootdir,
                              capture_output=True, text=True, errors="replace")
        return proc.stdout if proc.returncode == 0 else ""


@hookimpl
def autoresearch_configure(config) -> None:
    if enabled(config) and getattr(config.option, "subcommand", "run") == "run":
        config.pluginmanager.register(MLflowLogger(config), "mlflow-logger")
