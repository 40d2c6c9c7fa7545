"""The project's local plugin, loaded by autoresearch like pytest loads a conftest.py.

It shows how to extend the runner in-repo: this one adds the workload's tokens per second to
every run's metrics (computed from the summary block train.py prints at the end of its log), so
expectations, reports and the journal can use ``tokens_per_second`` like any other metric.
Delete it freely.
"""
import re

from autoresearch import hookimpl
from autoresearch.execute import read_tail


@hookimpl
def autoresearch_parse_metrics(experiment, log_path):
    # the summary is the end of the log: read its last few KiB, not the whole file
    summary = dict(re.findall(r"^(\w+):\s+([-\d.]+)\s*$", read_tail(log_path, 4096), re.MULTILINE))
    try:
        return {"tokens_per_second": round(float(summary["total_tokens_M"]) * 1e6 / float(summary["training_seconds"]), 1)}
    except (KeyError, ValueError, ZeroDivisionError):
        return None
