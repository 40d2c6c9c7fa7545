"""Reading metrics from the summary lines of a run's log (``^name: value``).

The log is scanned in chunks with a compiled bytes pattern, so a log of gigabytes is read in
constant memory; the last occurrence of each name wins.
"""
from __future__ import annotations

import re
from pathlib import Path

from autoresearch import hookimpl

# The summary line, ``name: value``, in one place. Names are at most 64 characters: a bounded
# match keeps a scan of long lines linear and fast.
NAME = r"[A-Za-z_][\w.]{0,63}"
NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
DEFAULT_PATTERN = rf"^(?P<name>{NAME}):[ \t]+(?P<value>{NUMBER})[ \t]*\r?$"
CHUNK = 1 << 20
MAX_LINE = 1 << 16


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("metric", "--metric", default="val_bpb", help="the metric that decides keep or discard",
                      check=lambda v: None if re.fullmatch(r"[A-Za-z_][\w.-]{0,99}", v) else
                      "must be a metric's name as the log prints it (letters, digits, '_', '.', '-')")
    parser.addsetting("report_metrics", type="list", default=[],
                      help="the metrics report shows, in this order; default: the metric, the targets' metrics, "
                           "and the summary's time, throughput and memory lines (names with seconds, per_second, "
                           "tokens_per, mfu, vram, memory, ...); the report says which it shows")
    parser.addsetting("direction", "--direction", default="minimize", choices=("minimize", "maximize"),
                      help="whether a lower or a higher metric is better")
    parser.addsetting("metric_pattern", type="str", default=DEFAULT_PATTERN, check=check_pattern,
                      help="regular expression matched against each log line to read metrics: groups "
                           "'name' and 'value', or 'value' alone for the metric setting's value "
                           "(e.g. 'val loss (?P<value>[-+0-9.eE]+)')")


# The default pattern, rewritten to start with a literal newline: the regex engine then jumps
# from one newline to the next instead of trying every byte (about 10x faster on long lines).
# Each chunk is scanned with a newline in front, so the first line is matched as well.
FAST_DEFAULT = re.compile(rf"\n(?P<name>{NAME}):[ \t]+(?P<value>{NUMBER})[ \t]*\r?(?=\n)".encode())


def check_pattern(pattern: str) -> str | None:
    """What is wrong with a metric_pattern, or None."""
    try:
        regex = re.compile(pattern.encode(), re.MULTILINE)
    except (re.error, UnicodeEncodeError, OverflowError, RecursionError, MemoryError) as exc:
        return f"not a valid regular expression ({type(exc).__name__}: {str(exc)[:80]})"
    if "value" not in regex.groupindex:
        return "needs the named group (?P<value>...), and (?P<name>...) unless it reads the metric setting's value"
    return None


def compile_pattern(pattern: str) -> re.Pattern[bytes]:
    if pattern == DEFAULT_PATTERN:
        return FAST_DEFAULT
    problem = check_pattern(pattern)
    if problem:
        raise ValueError(f"metric_pattern {problem}")
    return re.compile(pattern.encode(), re.MULTILINE)


def parse_text(text: str, pattern: str = DEFAULT_PATTERN, name: str = "") -> dict[str, float]:
    """The metrics in a piece of log text (such as its tail), the last occurrence of each winning."""
    metrics: dict[str, float] = {}
    for m in compile_pattern(pattern).finditer(b"\n" + text.encode("utf-8", errors="replace") + b"\n"):
        _store(metrics, m, name)
    return metrics


def parse_metrics(log_path: Path, pattern: str = DEFAULT_PATTERN, name: str = "",
                  counts: dict[str, int] | None = None) -> dict[str, float]:
    """Every metric in a log. A pattern without a ``name`` group reads one metric, called `name`.
    With `counts`, how many times each metric was printed is counted into it."""
    regex = compile_pattern(pattern)
    metrics: dict[str, float] = {}
    carry, skipping = b"", False
    with open(log_path, "rb") as f:
        while chunk := f.read(CHUNK):
            data = carry + chunk
            if skipping:  # inside a line too long to be a summary line: resume after it
                newline = data.find(b"\n")
                if newline < 0:
                    carry = b""
                    continue
                data, skipping = data[newline + 1:], False
            cut = data.rfind(b"\n") + 1  # only complete lines; the rest waits for the next chunk
            data, carry = data[:cut], data[cut:]
            if len(carry) > MAX_LINE:
                carry, skipping = b"", True
            for m in regex.finditer(b"\n" + data):
                _store(metrics, m, name, counts)
        if not skipping:
            for m in regex.finditer(b"\n" + carry + b"\n"):
                _store(metrics, m, name, counts)
    return metrics


def _store(metrics: dict[str, float], m: re.Match[bytes], name: str = "", counts: dict[str, int] | None = None) -> None:
    try:
        value = float(m.group("value"))
    except (ValueError, TypeError):
        return
    named = m.re.groupindex.get("name") is not None and m.group("name") is not None
    key = m.group("name").decode("utf-8", errors="replace") if named else name
    metrics[key] = value
    if counts is not None:
        counts[key] = counts.get(key, 0) + 1


@hookimpl(trylast=True)
def autoresearch_parse_metrics(experiment, log_path: Path) -> dict[str, float]:
    config = experiment.session.config
    return parse_metrics(Path(log_path), config.get("metric_pattern"), config.get("metric"))


def read_curve(path: Path) -> list[tuple[float, float]]:
    """A learning curve the prune plugin kept (``share<TAB>loss`` a line); what cannot be read is left out."""
    points = []
    try:
        for line in path.read_text().splitlines():
            x, y = line.split("\t")
            points.append((float(x), float(y)))
    except (OSError, ValueError):
        pass
    return points
