"""The project's local plugin, loaded by autoresearch like pytest loads a conftest.py.

It shows how to extend the runner in-repo: this one adds the workload's tokens per second to
every run's metrics (computed from the summary the workload already prints), so expectations
and reports can use ``tokens_per_second`` like any other metric. Delete it freely.
"""
from autoresearch import hookimpl


@hookimpl
def autoresearch_parse_metrics(experiment, log_path):
    from autoresearch.metrics import parse_metrics

    m = parse_metrics(log_path)
    if m.get("training_seconds") and "total_tokens_M" in m:
        return {"tokens_per_second": round(m["total_tokens_M"] * 1e6 / m["training_seconds"], 1)}
    return None
