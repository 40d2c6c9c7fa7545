"""The built-in plugins' formats against the seeds, and the status / new / report commands."""
from __future__ import annotations

import signal
import time
import tomllib

import pytest

from autoresearch.plugins import journal, lessons, results_tsv
from autoresearch.plugins.verdict import Rule, judge
from autoresearch.reports import Cause, Report, RunResult
from conftest import git, simple, spawn, write

RULE = Rule(keep_threshold=0.005, min_improvement=0.001, max_added_lines=20, repeats=1, max_repeats=1)


@pytest.mark.parametrize("improvement, net, status", [
    (0.0062, 4, "keep"),      # > 0.005 better: keep
    (0.0062, 60, "keep"),     # ... whatever the lines
    (0.003, 4, "keep"),       # 0.001-0.005 better, small change: keep
    (0.003, 20, "discard"),   # ... 20+ lines: discard
    (0.0008, 4, "discard"),   # beyond the noise, but below min_improvement
    (0.0005, -3, "keep"),     # within noise, simpler: keep (simplification win)
    (0.0005, 0, "discard"),   # within noise, equal: discard
    (-0.0005, -3, "keep"),
    (-0.002, -10, "discard"),  # worse beyond the noise, even simpler: discard
])
def test_simplicity_criterion(improvement, net, status):
    """The seed's criterion on top of the noise: sigma 0.0003, one run against two (se 0.00037)."""
    base = (1.0, 1.0)
    assert judge((1.0 - improvement,), base, base, 0.0003, net, RULE).status == status


def report(**kw) -> Report:
    base = dict(seq=1, tag="t", nodeid="experiments/x.toml::x", name="x", key="k", description="increase LR to 0.04",
                hypothesis="h", status="keep", reason="keep: -0.0047 val_bpb for +0 lines", metric="val_bpb",
                direction="minimize", metrics={"val_bpb": 0.9932, "peak_vram_mb": 45260.8},
                baseline_metrics={"val_bpb": 0.9979, "peak_vram_mb": 45060.2}, commit="b2c3d4e5f6a7",
                started=1_700_000_000.0, duration=312.0, log_path="/logs/001-x.log")
    base.update(kw)
    if "runs" not in kw and base["status"] != "crash":  # one run that printed the metrics, decided beyond the noise
        base.update(runs=(RunResult(0, base["duration"], base["log_path"], metrics=base["metrics"]),), beyond_noise=True)
    return Report(**base)


def test_results_tsv_golden_matches_the_seed_example():
    rows = [
        report(seq=0, nodeid="baseline", description="baseline", commit="a1b2c3d4", metrics={"val_bpb": 0.9979, "peak_vram_mb": 45060.2}),
        report(seq=1, commit="b2c3d4e5"),
        report(seq=2, commit="c3d4e5f6", status="discard", description="switch to GeLU activation",
               metrics={"val_bpb": 1.005, "peak_vram_mb": 45060.2}),
        report(seq=3, commit="d4e5f6g7", status="crash", description="double model width (OOM)", metrics={}),
        report(seq=4, commit="e5f6a7b8", status="interrupted", description="never a row"),
    ]
    assert results_tsv.render("val_bpb", rows) == (
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
        "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n"
        "b2c3d4e\t0.993200\t44.2\tkeep\tincrease LR to 0.04\n"
        "c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU activation\n"
        "d4e5f6g\t0.000000\t0.0\tcrash\tdouble model width (OOM)\n"
    )


def test_results_tsv_cleans_tabs_and_line_breaks():
    line = results_tsv.row(report(description="a\tb\nc\u2028d"))
    assert line.split("\t")[4] == "a b c d" and "\n" not in line


def test_journal_entry_has_the_seed_fields_in_order():
    text = journal.completed(report(expectation="confirmed", expectation_details=("val_bpb 0.9932 < 0.9969",),
                                    changes=(("MATRIX_LR", "0.04", "0.06"),)))
    fields = [line.split(":")[0] for line in text.strip().splitlines()]
    assert fields == ["**Status**", "**Actual outcome**", "**Delta**", "**Duration**", "**Learning**", "**Next**"]
    assert "**Duration**: 5m 12s wall, 0.087 GPU-hours" in text
    assert "**Learning**: MATRIX_LR 0.04 → 0.06 improved val_bpb by 0.0047 (in 1 run) and was kept; the hypothesis was confirmed." in text
    assert "**Next**: Push further in the same direction: MATRIX_LR above 0.06." in text


@pytest.mark.parametrize("name, old, new, status, advice", [
    ("DROPOUT", "0.5", "1.0", "keep", "DROPOUT is at the edge of its range (1.0)"),
    ("WARMUP", "10", "0", "keep", "WARMUP is at the edge of its range (0)"),
    ("DEPTH", "1", "2", "discard", "Drop the idea: DEPTH cannot go below 1."),
    ("LR", "0.0", "0.01", "discard", "Drop the idea: LR cannot go below 0.0."),
    ("LR", "0.04", "0.06", "keep", "Push further in the same direction: LR above 0.06."),
    ("DROPOUT", "0.2", "0.1", "discard", "Try the other direction: DROPOUT above 0.2."),
])
def test_next_steps_stay_in_a_valid_range(name, old, new, status, advice):
    text = journal.completed(report(status=status, beyond_noise=True, changes=((name, old, new),)))
    assert f"**Next**: {advice}" in text


@pytest.mark.parametrize("cause, message, advice", [
    (Cause.TIMEOUT, "timeout: killed after 600s (limit 600s)", "Make each step cheaper"),
    (Cause.OUT_OF_MEMORY, "out of memory: torch.OutOfMemoryError", "Cut memory"),
    (Cause.KILLED, "killed by SIGKILL from outside the runner", "Cut memory"),
    (Cause.NAN, "loss became NaN or exploded (the workload printed FAIL)", "Lower the learning rate"),
    (Cause.PATCH_FAILED, "its baseline 'a' crashed", "Build on a baseline that ran"),
    (Cause.EXIT_CODE, "ImportError: no module named x", "Fix the error if it is trivial"),
    # the cause is data: words in the message that look like another cause change nothing
    (Cause.EXIT_CODE, "ValueError: nan in memory timeout", "Fix the error if it is trivial"),
])
def test_journal_crash_next_steps(cause, message, advice):
    r = report(status="crash", cause=cause, root_cause=message, metrics={})
    assert journal.next_step(r).startswith(advice)


def test_lessons_keep_the_human_section_word_for_word():
    human = "# Lessons\n\n## Notes\n\nMy own words, *exactly*.\n  Indented too.\n"
    first = lessons.merge(human, "generated v1")
    assert first.startswith(human.rstrip("\n")) and "generated v1" in first
    edited = first.replace("Indented too.", "Indented too.\nAnd a new line.") + "\n## After\nkept as well\n"
    second = lessons.merge(edited, "generated v2")
    assert "generated v1" not in second and "generated v2" in second
    assert second.replace("generated v2", "generated v1") == edited


def test_lessons_rules_need_repeated_evidence():
    worse = [report(seq=i, status="discard", changes=(("LR", "0.04", f"0.0{5 + i}"),),
                    metrics={"val_bpb": 1.01}) for i in (1, 2)]
    ooms = [report(seq=i, status="crash", name=f"wide{i}", cause=Cause.OUT_OF_MEMORY, root_cause="CUDA error",
                   metrics={}) for i in (3, 4)]
    rules = lessons.rules(worse + ooms, "2026-11-22")
    assert "- NEVER raise LR because all 2 tries made val_bpb worse. Learned: 2026-11-22" in rules
    assert "- NEVER repeat changes like wide3, wide4 because 2 of them ended in out-of-memory crashes. Learned: 2026-11-22" in rules
    assert lessons.rules(worse[:1], "2026-11-22") == []


# -------------------------------------------------------------------------------------------


def test_new_writes_a_valid_hypothesis_file(repo, cli):
    r = cli("new", "raise LR to 0.02", "--set", "LR=0.02", "--set", "ACT=silu", "--expect", "val_bpb=< baseline - 0.001")
    assert r.rc == 0, r
    path = repo / "experiments" / "raise_lr_to_0_02.toml"
    data = tomllib.loads(path.read_text())
    assert data["set"] == {"LR": 0.02, "ACT": "silu"}
    assert data["expect"] == {"val_bpb": "< baseline - 0.001"}
    assert "LR from 0.01 to 0.02" in data["hypothesis"]
    r = cli("run", "--collect-only")
    assert r.rc == 0 and "experiments/raise_lr_to_0_02.toml::raise_lr_to_0_02" in r.out
    assert cli("new", "raise LR to 0.02", "--set", "LR=0.03").rc == 4  # the file exists


def test_new_refuses_what_collection_would_refuse(repo, cli):
    r = cli("new", "typo", "--set", "LRR=1")
    assert r.rc == 4 and "no module-level constant LRR (did you mean LR? constants: " in r.err
    r = cli("new", "bad expectation", "--set", "LR=0.02", "--expect", "val_bpb=lower")
    assert r.rc == 4 and "does not start with a comparison" in r.err
    assert not list((repo / "experiments").glob("*.toml"))


def test_status_and_report_after_a_run(repo, cli, tmp_path):
    simple(repo, "a", "LR = 0.02", 'val_bpb = "< baseline"')
    simple(repo, "b", "LR = 0.001")
    simple(repo, "c", 'CRASH = "exit"')
    assert cli("run", "--tag", "t1").rc == 0
    simple(repo, "d", "DEPTH = 3")
    r = cli("status")
    lines = r.out.splitlines()
    assert len(lines) <= 40
    assert lines[0] == ("autoresearch status — tag t1 (branch autoresearch/t1): 4 experiments, 2 keep, 1 discard, "
                        "1 crash; no runner at work")
    assert lines[1].startswith("best val_bpb 1.120000 (-0.100000 from the baseline 1.220000): a [")
    assert lines[2] == "noise: none (val_bpb was the same in every repeated run): the plain comparison decides"
    assert "queued (1):" in r.out and "experiments/d.toml::d" in r.out
    assert "ValueError: synthetic failure" in r.out
    plot = tmp_path / "progress.png"
    r = cli("report", "--plot", str(plot), "--cost-per-hour", "2.5")
    assert r.rc == 0, r
    assert "| 1 | a | 1.120000 ↓ |" in r.out
    assert "Noise: none (val_bpb was the same in every repeated run)" in r.out
    assert "| LR | 0.01 | 0.01 → **0.02** ↑ | 0.02 → **0.001** ↓ (reverted) |" in r.out
    assert "| 4 | **total** |" in r.out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_status_without_runs(repo, cli):
    r = cli("status")
    assert r.rc == 4 and "no runs yet" in r.err


def test_quiet_and_verbose_terminal(repo, cli):
    simple(repo, "a", "LR = 0.02", 'val_bpb = "< baseline"')
    r = cli("run", "--tag", "q", "-q")
    assert "experiments/a.toml::a" not in r.out and "2 keep" in r.out
    simple(repo, "b", "LR = 0.03", 'val_bpb = "< baseline"')
    r = cli("run", "--resume", "-v")
    assert "keep: -0.1000 val_bpb after 1 run, +0 lines (better; the runs show no noise)" in r.out
    assert "expect: val_bpb 1.02 < 1.12" in r.out


def test_watch_runs_new_and_changed_files_once(repo):
    simple(repo, "a", "LR = 0.02")
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "watch_interval = 0.2\n")
    git(repo, "commit", "-qam", "fast watch")
    tsv = repo / "results.tsv"

    def rows() -> int:
        return len(tsv.read_text().splitlines()) - 1 if tsv.exists() else 0

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 30
        while rows() < n and time.monotonic() < deadline:
            time.sleep(0.1)

    with spawn(repo, "run", "--tag", "w", "--watch") as proc:
        wait_for(2)
        simple(repo, "b", "DEPTH = 3")  # a new file
        wait_for(3)
        write(repo / "experiments" / "broken.toml", "description = \n")  # reported, skipped
        (repo / "experiments" / "a.toml").touch()  # same content: not run again
        simple(repo, "b", "DEPTH = 5")  # changed content: runs
        wait_for(4)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert [x.split("\t")[4] for x in tsv.read_text().splitlines()[1:]] == ["baseline", "a", "b", "b"]
    assert "ERROR experiments/broken.toml:1: invalid TOML" in err
