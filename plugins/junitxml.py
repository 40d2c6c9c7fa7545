"""junitxml: ``--junitxml PATH`` writes one test case per experiment, so a CI system shows
research results the way it shows tests, and a normal night stays green: a keep and a discard
pass (a discard is the method working; its verdict, reason and expectation are in the case's
properties), a crash is an error carrying the log's tail, an interrupted experiment is skipped.
A refuted expectation is a failure only with ``junit_refuted = "failure"`` (default ``"pass"``).
"""
from __future__ import annotations

import datetime
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.reports import Cause, Report, Status


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addoption("--junitxml", "--junit-xml", dest="junitxml", metavar="PATH", default=None, group="reporting",
                     help="write a JUnit XML report of the experiments to PATH")
    parser.addsetting("junit_refuted", "--junit-refuted", default="pass", choices=("pass", "failure"),
                      group="reporting",
                      help="how --junitxml marks an experiment whose expectation was refuted: pass (a discard is "
                           "a normal outcome of research) or failure (a red CI check for every refuted hypothesis)")


def _text(s: str) -> str:
    """XML 1.0 cannot hold most control characters: drop them."""
    return "".join(c for c in s if c in "\t\n\r" or ord(c) >= 0x20)


class LogXML:
    """Renders the run's history (the ledger) as one test suite when the session finishes."""

    def __init__(self, path: Path, refuted: str = "pass") -> None:
        self.path = path
        self.started = time.time()
        self.refuted = refuted  # "pass" or "failure": the junit_refuted setting

    def failed(self, r: Report) -> bool:
        """A failure: a measured experiment whose expectation was refuted, with junit_refuted = "failure"."""
        return self.refuted == "failure" and r.expectation == "refuted" and r.status in (Status.KEEP, Status.DISCARD)

    def element(self, reports: list[Report]) -> ET.Element:
        started = datetime.datetime.fromtimestamp(self.started).astimezone()
        suite = ET.Element("testsuite", name="autoresearch", hostname=socket.gethostname(),
                           timestamp=started.isoformat(timespec="seconds"),
                           time=f"{time.time() - self.started:.3f}", tests=str(len(reports)),
                           failures=str(sum(self.failed(r) for r in reports)),
                           errors=str(sum(r.status == Status.CRASH for r in reports)),
                           skipped=str(sum(r.status == Status.INTERRUPTED for r in reports)))
        for r in reports:
            path, _, name = r.nodeid.rpartition("::")
            stem = path.removesuffix(".toml").removesuffix(".py")  # experiments/lr.toml -> experiments.lr
            case = ET.SubElement(suite, "testcase", classname=stem.replace("/", ".") or "autoresearch",
                                 name=_text(name or r.nodeid), time=f"{r.duration:.3f}")
            props = ET.SubElement(case, "properties")
            for key, value in [("commit", r.commit), ("status", Cause.PRUNED if r.pruned else r.status),
                               ("verdict", r.reason), ("expectation", r.expectation or ""),
                               ("beyond_noise", str(r.beyond_noise).lower()),
                               *((f"metric.{k}", f"{v:g}") for k, v in r.metrics.items())]:
                ET.SubElement(props, "property", name=key, value=_text(str(value)))
            if self.failed(r):
                ET.SubElement(case, "failure", message=_text("expectation refuted: " + "; ".join(r.expectation_details)),
                              type="refuted").text = _text("\n".join((r.reason, *r.expectation_details)))
            elif r.status == Status.CRASH:
                ET.SubElement(case, "error", message=_text(r.root_cause or r.reason)).text = _text(r.log_tail)
            elif r.status == Status.INTERRUPTED:
                ET.SubElement(case, "skipped", message=_text(r.reason))
            ET.SubElement(case, "system-out").text = _text(f"{r.reason}\nlog: {r.log_path}")
        return suite

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        root = ET.Element("testsuites")
        root.append(self.element(session.history))
        ET.ElementTree(root).write(self.path, encoding="utf-8", xml_declaration=True)


@hookimpl
def autoresearch_configure(config) -> None:
    path = config.getoption("junitxml")
    if path:  # registered only when asked for, as pytest's LogXML is
        config.pluginmanager.register(LogXML(Path(path).absolute(), config.get("junit_refuted")),
                                      "junitxml-writer")
