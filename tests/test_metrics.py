"""Reading metrics from a log: the summary lines, in constant memory, whatever the log holds."""
from __future__ import annotations

import pytest

from autoresearch import metrics
from autoresearch.metrics import DEFAULT_PATTERN, parse_metrics

LOG = b"""step 00001 (10.0%) | loss 2.5 | remaining 9s
val_bpb: 9.0
---
val_bpb:          0.997900
training_seconds: 300.1
peak_vram_mb:     45060.2
mfu_percent:      -1.5e-3
note: not a number
depth: 8"""  # no final newline


def test_summary_lines_last_occurrence_wins(tmp_path):
    path = tmp_path / "run.log"
    path.write_bytes(LOG)
    assert parse_metrics(path) == {"val_bpb": 0.9979, "training_seconds": 300.1, "peak_vram_mb": 45060.2,
                                   "mfu_percent": -0.0015, "depth": 8.0}


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_lines_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(metrics, "CHUNK", chunk)
    path = tmp_path / "run.log"
    path.write_bytes(b"\xff\xfe garbage\n" * 50 + LOG)
    assert parse_metrics(path)["val_bpb"] == 0.9979 and parse_metrics(path)["depth"] == 8.0


def test_custom_pattern(tmp_path):
    path = tmp_path / "run.log"
    path.write_bytes(b"METRIC accuracy=0.91\nMETRIC loss=0.3\nval_bpb: 1.0\n")
    assert parse_metrics(path, r"^METRIC (?P<name>\w+)=(?P<value>[\d.]+)$") == {"accuracy": 0.91, "loss": 0.3}
    with pytest.raises(ValueError, match="named group"):
        parse_metrics(path, r"^(\w+)=")
    # a value alone: the metric setting's value, in the script's own format
    path.write_bytes(b"step 10: train loss 2.5, val loss 2.6\nstep 20: train loss 2.1, val loss 2.25\n")
    assert parse_metrics(path, r"val loss (?P<value>[-+0-9.eE]+)", "val_loss") == {"val_loss": 2.25}


def test_default_pattern_fast_path_matches_the_documented_pattern(tmp_path):
    path = tmp_path / "run.log"
    path.write_bytes(b"a: 1\n b: 2\nc:3\nd:\t4 \ne.f: 5\r\n" + b"x" * 70 + b": 6\n_g: nan\n")
    fast = parse_metrics(path)
    slow = parse_metrics(path, DEFAULT_PATTERN.replace("{0,63}", "{0,63}(?:)"))  # same regex, general path
    assert fast.keys() == slow.keys() == {"a", "d", "e.f", "_g"}


def test_the_tail_of_an_overlong_line_is_not_a_line(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "CHUNK", 1024)
    monkeypatch.setattr(metrics, "MAX_LINE", 2048)
    path = tmp_path / "run.log"
    path.write_bytes(b"x" * 5000 + b"val_bpb: 7.0\nval_bpb: 1.5\n" + b"y" * 9000)
    assert parse_metrics(path) == {"val_bpb": 1.5}
