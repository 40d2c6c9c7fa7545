"""ci: the settings of ``autoresearch ci``, the nightly job that continues the research
(autoresearch/ci.py, autoresearch/commands/ci.py; docs/ci.md)."""
from __future__ import annotations

from autoresearch import hookimpl


def _branch(value: str) -> str | None:
    return None if value.startswith("autoresearch/") and value.count("/") == 1 else \
        "must be a run's branch, autoresearch/TAG (e.g. autoresearch/nightly)"


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("ci_branch", default="autoresearch/nightly", check=_branch,
                      help="the long-lived research branch that autoresearch ci continues night after night, "
                           "autoresearch/TAG (the run tagged TAG; its record lives on autoresearch-record/TAG); "
                           "ci --branch overrides")
    parser.addsetting("ci_base", default="main",
                      help="the branch the pull request of autoresearch ci --pr and publish --pr goes into; --base "
                           "overrides")
