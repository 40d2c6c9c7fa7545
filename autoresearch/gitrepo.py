"""What the commands need of git outside a run (the git plugin runs the run's own git):
the repository's common git folder, and keeping paths untracked through ``info/exclude``."""
from __future__ import annotations

import subprocess
from pathlib import Path


def common_dir(root: Path) -> Path | None:
    """The git folder every worktree of `root`'s repository shares, or None outside a repository."""
    out = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=root,
                         capture_output=True, text=True).stdout.strip()
    return Path(out) if out else None


def exclude(git_dir: Path, names: list[str]) -> None:
    """Keep `names` (the state folder, results.tsv) untracked, without touching .gitignore."""
    path = git_dir / "info" / "exclude"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [f"/{n.strip('/')}" for n in names if f"/{n.strip('/')}" not in lines]
    if missing:
        with open(path, "a") as f:
            f.write("".join(f"{m}\n" for m in missing))
