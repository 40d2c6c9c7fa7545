"""The project's local plugin, loaded by autoresearch like pytest loads a conftest.py.

It shows how to extend the runner in-repo: this one adds the workload's tokens per second to
every run's metrics (computed from the summary block train.py prints at the end of its log), so
expectations, reports and the journal can use ``tokens_per_second`` like any other metric.
Delete it freely.
"""
from autoresearch import hookimpl
from autoresearch.execute import read_tail
from autoresearch.metrics import parse_text


@hookimpl
def autoresearch_parse_metrics(experiment, log_path):
    # the summary is the end of the log: read its last few KiB, not the whole file
    summary = parse_text(read_tail(log_path, 4096))
    try:
        return {"tokens_per_second": round(summary["total_tokens_M"] * 1e6 / summary["training_seconds"], 1)}
    except (KeyError, ZeroDivisionError):
        return None
