"""Links out of the project: no collected file and no path setting may lead outside the project
through a symbolic link, unless the user gives that path on the command line on purpose.

A tracked link in experiments/ to a Python file elsewhere would have it imported and run by every
`autoresearch run`; a link in the way of a path setting would have the runner read or write
elsewhere. Each is one line before anything is read, imported or written.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from test_settings import assert_one_line, project, start  # noqa: F401 (project: the fixture)

EVIL = "open({ran!r}, 'w').close()\n"  # a Python file that says when it ran


def elsewhere(project: Path) -> Path:
    out = project.parent / "links-elsewhere"
    out.mkdir(exist_ok=True)
    (out / "ran").unlink(missing_ok=True)
    (out / "evil.py").write_text(EVIL.format(ran=str(out / "ran")))
    (out / "evil.toml").write_text('description = "e"\nhypothesis = "h"\n[set]\nLR = 0.05\n')
    (out / "train.py").write_text("LR = 0.01\n")
    return out


# (what the project holds, the settings, the file a link leads to: each a link out of the project)
CASES = {
    "a Python hypothesis file": ({"experiments/evil.py": "evil.py"}, ""),
    "a TOML hypothesis file": ({"experiments/evil.toml": "evil.toml"}, ""),
    "a folder of hypotheses": ({"experiments/more": "."}, ""),
    "a folder in paths": ({"more": "."}, 'paths = ["experiments", "more"]\n'),
    "a folder on the way to the state folder": ({"out": "."}, 'state_dir = "out/state"\n'),
    "a folder on the way to the journal": ({"out": "."}, 'journal_path = "out/journal.md"\n'),
    "a folder on the way to results.tsv": ({"out": "."}, 'results_path = "out/results.tsv"\n'),
    "a folder on the way to the lessons": ({"out": "."}, 'lessons_path = "out/lessons.md"\n'),
    "a folder on the way to an editable file": ({"src2": "."}, 'editable = ["train.py", "src2/train.py"]\n'),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_link_out_of_the_project_is_one_line_and_nothing_runs(project, capsys, monkeypatch, case):
    links, table = CASES[case]
    out = elsewhere(project)

    def place() -> None:
        for name, target in links.items():
            (project / name).symlink_to(out / target)

    rc, err, wrote = start(project, table, capsys=capsys, monkeypatch=monkeypatch, setup=place)
    assert rc == 4, (case, rc, err)
    assert any(w in err for w in ("outside the project", "inside the project", "link")), (case, err)
    assert_one_line(rc, err, wrote, project)
    assert not (out / "ran").exists(), case
    assert sorted(p.name for p in out.iterdir()) == ["evil.py", "evil.toml", "train.py"], case  # nothing written there


def test_a_linked_file_given_on_the_command_line_is_collected_on_purpose(project, capsys, monkeypatch):
    out = elsewhere(project)
    rc, err, _ = start(project, "", "experiments/evil.toml", "--collect-only", capsys=capsys, monkeypatch=monkeypatch,
                       setup=lambda: (project / "experiments" / "evil.toml").symlink_to(out / "evil.toml"))
    assert rc == 0, err
    rc, err, _ = start(project, "", str(out), "--collect-only", capsys=capsys, monkeypatch=monkeypatch)
    assert rc == 0, err  # a folder elsewhere, named on the command line: its files are collected
