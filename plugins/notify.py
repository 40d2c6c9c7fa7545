"""notify: a message to a chat webhook when the baseline crashes, on each keep, and when the
session ends.

Off unless configured: the webhook's URL is read from the environment variable that
``notify_webhook_env`` names (default ``AUTORESEARCH_WEBHOOK``), never from a file (a webhook
URL is a secret: it is never printed either). The message is Slack's incoming-webhook JSON,
``{"text": "..."}``, which Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint and Teams'
workflows accept too. A post that fails (no network, a 4xx/5xx, a timeout) is one warning line
on stderr and the run goes on: a notification never stops research.
"""
from __future__ import annotations

import json
import os
import sys

from autoresearch import hookimpl
from autoresearch.reports import ExitCode, Status

TIMEOUT = 5.0  # seconds one post may take


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("notify_webhook_env", default="AUTORESEARCH_WEBHOOK",
                      check=lambda v: None if v.replace("_", "").isalnum() else "must be an environment variable's name",
                      help="the environment variable holding a chat webhook URL (Slack-compatible JSON); when it is "
                           "set, a message goes there on a crash of the baseline, on each keep and at the session's "
                           "end; unset: no messages")


def post(url: str, text: str, timeout: float = TIMEOUT) -> str | None:
    """POST ``{"text": text}`` to `url`; None when it went, else what went wrong, in words."""
    import urllib.error  # here, not at the top: every command's start-up imports the plugins
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "autoresearch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))[:200]


class Notifier:
    def __init__(self, config, url: str) -> None:
        self.config, self.url = config, url
        self.sent: set[tuple[int, str]] = set()  # (seq, status) told in this process: a re-logged report once
        self.kept = 0

    def send(self, text: str) -> None:
        problem = post(self.url, text)
        if problem:
            print(f"autoresearch: warning: notify: the webhook (${self.config.get('notify_webhook_env')}) did not "
                  f"take the message ({problem}); carrying on", file=sys.stderr)

    @hookimpl
    def autoresearch_experiment_logreport(self, report) -> None:
        if (report.seq, report.status) in self.sent:
            return
        metric = report.metric
        if report.is_baseline and report.status == Status.CRASH:
            text = (f"autoresearch {report.tag}: the baseline crashed ({report.root_cause or report.reason}); "
                    "the session stops: nothing can be compared with it")
        elif report.status == Status.KEEP and not report.is_baseline:
            self.kept += 1
            delta = f" ({report.delta:+.6g} against its baseline)" if report.delta is not None else ""
            value = f"{report.value:.6g}" if report.value is not None else "?"
            text = (f"autoresearch {report.tag}: kept #{report.seq} {report.description}: {metric} {value}{delta} "
                    f"[{report.commit[:7]}]")
        else:
            return
        self.sent.add((report.seq, report.status))
        self.send(text)

    @hookimpl
    def autoresearch_sessionfinish(self, session, exitstatus) -> None:
        done = [r for r in session.history if r.status != Status.INTERRUPTED]
        counts = {s: sum(r.status == s for r in done) for s in (Status.KEEP, Status.DISCARD, Status.CRASH)}
        how = {ExitCode.OK: "finished", ExitCode.INTERRUPTED: "interrupted", ExitCode.TERMINATED: "terminated"}.get(
            exitstatus, f"stopped (exit code {int(exitstatus)})")
        best = [r for r in done if r.status == Status.KEEP and r.value is not None]
        tip = f"; best {best[-1].metric} {best[-1].value:.6g} [{best[-1].commit[:7]}]" if best else ""
        self.send(f"autoresearch {session.tag}: session {how}: {len(done)} experiments so far, "
                  f"{counts[Status.KEEP]} keep, {counts[Status.DISCARD]} discard, {counts[Status.CRASH]} crash{tip} "
                  f"(branch autoresearch/{session.tag})")


@hookimpl
def autoresearch_configure(config) -> None:
    url = os.environ.get(config.get("notify_webhook_env") or "", "").strip()
    if url:  # registered only when configured: no webhook, no plugin at work
        config.pluginmanager.register(Notifier(config, url), "notify-webhook")
