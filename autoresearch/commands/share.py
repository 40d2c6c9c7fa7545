"""``autoresearch export | import | publish``: moving a run (autoresearch/share.py does the work)."""
from __future__ import annotations

from typing import Any

from autoresearch.reports import ExitCode


def main(config: Any) -> int:
    from autoresearch import share

    command = config.getoption("subcommand")
    if command == "export":
        from autoresearch.main import check_output

        out = config.getoption("output")
        share.export(config, str(check_output(config, "-o", out)) if out else None, print)
    elif command == "import":
        share.import_run(config, config.getoption("file"), print)
    else:
        share.publish(config, print)
    return ExitCode.OK
