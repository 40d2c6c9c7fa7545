"""``autoresearch export | import | publish [--pr]``: moving a run (autoresearch/share.py does the work,
autoresearch/github.py the pull request)."""
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
        table = share.publish(config, print)
        if config.getoption("pr"):
            publish_pr(config, table, print)
    return ExitCode.OK


def publish_pr(config: Any, table: str, say: Any) -> str:
    """``publish --pr``: the pull request of the run's branch into --base (opened, or updated when
    one is open), the results table and the report as its body; returns its URL."""
    from autoresearch.commands.ci import title
    from autoresearch.commands.report import report
    from autoresearch.github import open_or_update, repository
    from autoresearch.session import Session

    tag = config.option.tag = Session.open_existing(config, config.getoption("tag")).tag
    base = config.getoption("base") or config.get("ci_base", "main")
    how, url = open_or_update(repository(config.rootdir, config.getoption("remote") or "origin"),
                              f"autoresearch/{tag}", base, title(config, tag), table + "\n\n" + report(config))
    say(f"{how} the pull request of autoresearch/{tag} into {base}: {url}")
    return url
