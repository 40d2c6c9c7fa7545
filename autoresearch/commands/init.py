"""``autoresearch init``: set up a repository (scaffold.py does the work); never overwrites."""
from __future__ import annotations

from pathlib import Path

from autoresearch.reports import ExitCode


def main(rootdir: Path, command: str | None = None) -> int:
    from autoresearch.scaffold import init

    written = init(rootdir, print, command)
    if written:
        names = " ".join(sorted({p.relative_to(rootdir).parts[0] for p in written}))
        print(f"next: fill in the TODOs in pyproject.toml, then commit (git add {names} && git commit -m "
              "'autoresearch init'), check with autoresearch run --collect-only, and run autoresearch run")
    return ExitCode.OK
