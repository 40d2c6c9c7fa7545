"""exitfirst: ``-x`` stops the session after the first crash of a hypothesis."""
from __future__ import annotations

from autoresearch import hookimpl
from autoresearch.reports import Status


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("-x", "--exitfirst", action="store_true", help="stop at the first crash")


class ExitFirst:
    def __init__(self) -> None:
        self.session = None

    @hookimpl
    def autoresearch_sessionstart(self, session) -> None:
        self.session = session

    @hookimpl
    def autoresearch_experiment_logreport(self, report) -> None:
        if report.status == Status.CRASH and not report.is_baseline and self.session is not None:
            self.session.shouldstop = f"-x: stopped at the first crash ({report.nodeid}: {report.root_cause})"


@hookimpl
def autoresearch_configure(config) -> None:
    if config.getoption("exitfirst"):
        config.pluginmanager.register(ExitFirst(), "exitfirst-session")
