"""Reading metrics from the summary lines of a run's log (``^name: value``).

The log is scanned in chunks with a compiled bytes pattern, so a log of gigabytes is read in
constant memory; the last occurrence of each name wins.
"""
from __future__ import annotations

import re
from pathlib import Path

from autoresearch import hookimpl

DEFAULT_PATTERN = r"^(?P<name>[A-Za-z_][\w.]*):[ \t]+(?P<value>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))[ \t]*\r?$"
CHUNK = 1 << 20


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("metric", "--metric", default="val_bpb", help="the metric that decides keep or discard")
    parser.addsetting("direction", "--direction", default="minimize", choices=("minimize", "maximize"),
                      help="whether a lower or a higher metric is better")
    parser.addsetting("metric_pattern", type="str", default=DEFAULT_PATTERN,
                      help="regular expression, with groups 'name' and 'value', matched against each "
                           "log line to read metrics")


def compile_pattern(pattern: str) -> re.Pattern[bytes]:
    regex = re.compile(pattern.encode(), re.MULTILINE)
    if not {"name", "value"} <= set(regex.groupindex):
        raise ValueError("metric_pattern needs the named groups 'name' and 'value'")
    return regex


def parse_metrics(log_path: Path, pattern: str = DEFAULT_PATTERN) -> dict[str, float]:
    regex = compile_pattern(pattern)
    metrics: dict[str, float] = {}
    carry = b""
    with open(log_path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n") + 1  # only complete lines; the rest waits for the next chunk
            data, carry = data[:cut], data[cut:]
            if len(carry) > CHUNK:  # a line longer than a chunk is no summary line
                carry = b""
            for m in regex.finditer(data):
                _store(metrics, m)
        for m in regex.finditer(carry):
            _store(metrics, m)
    return metrics


def _store(metrics: dict[str, float], m: re.Match[bytes]) -> None:
    try:
        value = float(m.group("value"))
    except ValueError:
        return
    metrics[m.group("name").decode("utf-8", errors="replace")] = value


@hookimpl(trylast=True)
def autoresearch_parse_metrics(experiment, log_path: Path) -> dict[str, float]:
    return parse_metrics(Path(log_path), experiment.session.config.get("metric_pattern"))
