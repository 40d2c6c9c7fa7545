"""notify: Slack-compatible messages to a webhook (a local HTTP server) on a baseline crash, on
each keep and at the session's end; off unless configured; a failed post is one warning line."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import git, simple


class Hook:
    def __init__(self, status: int = 200) -> None:
        self.messages: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.messages.append(dict(json.loads(body), content_type=self.headers.get("Content-Type")))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    try:
        yield h
    finally:
        h.close()


def test_a_message_on_each_keep_and_at_the_end(repo: Path, cli, hook: Hook, monkeypatch) -> None:
    monkeypatch.setenv("AUTORESEARCH_WEBHOOK", hook.url)
    simple(repo, "lr_up", "LR = 0.03")
    simple(repo, "deeper", "DEPTH = 6")
    r = cli("run", "--tag", "n1")
    assert r.rc == 0, r
    texts = [m["text"] for m in hook.messages]
    assert len(texts) == 2, texts  # the keep of lr_up, then the end: nothing for the baseline or the discard
    assert texts[0].startswith("autoresearch n1: kept #2 lr_up: val_bpb 1.02 (-0.2 against its baseline) [")
    assert texts[1].startswith("autoresearch n1: session finished: 3 experiments so far, 2 keep, 1 discard, 0 crash; "
                               "best val_bpb 1.02")
    assert {m["content_type"] for m in hook.messages} == {"application/json"}
    assert hook.url not in r.out + r.err  # a webhook URL is a secret


def test_a_message_when_the_baseline_crashes(repo: Path, cli, hook: Hook, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_URL", hook.url)
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + 'notify_webhook_env = "HOOK_URL"\n')
    (repo / "train.py").write_text((repo / "train.py").read_text().replace('CRASH = ""', 'CRASH = "exit"'))
    git(repo, "commit", "-qam", "notify, and a workload that crashes")
    simple(repo, "lr_up", "LR = 0.03")
    r = cli("run", "--tag", "n2")
    assert r.rc == 1, r
    texts = [m["text"] for m in hook.messages]
    assert texts[0].startswith("autoresearch n2: the baseline crashed (")
    assert texts[-1].startswith("autoresearch n2: session stopped (exit code 1): 1 experiments so far, 0 keep, "
                                "0 discard, 1 crash")


def test_off_unless_configured(repo: Path, cli, hook: Hook, monkeypatch) -> None:
    monkeypatch.delenv("AUTORESEARCH_WEBHOOK", raising=False)
    simple(repo, "lr_up", "LR = 0.03")
    assert cli("run", "--tag", "n3").rc == 0
    assert hook.messages == []


@pytest.mark.parametrize("status", [500, 404, None])
def test_a_webhook_that_fails_is_one_warning_line(repo: Path, cli, monkeypatch, status: int | None) -> None:
    if status is None:  # nothing listening there
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
        failing = None
    else:
        failing = Hook(status)
        url = failing.url
    try:
        monkeypatch.setenv("AUTORESEARCH_WEBHOOK", url)
        simple(repo, "lr_up", "LR = 0.03")
        r = cli("run", "--tag", "n4")
        assert r.rc == 0, r
        warnings = [line for line in r.err.splitlines() if "notify" in line]
        assert len(warnings) == 2, r.err  # the keep's and the end's: one line each, the run went on
        assert all(w.startswith("autoresearch: warning: notify: the webhook ($AUTORESEARCH_WEBHOOK) did not take "
                                "the message (") and w.endswith("); carrying on") for w in warnings)
        assert url not in r.err
        assert (repo / "results.tsv").read_text().count("\n") == 3
    finally:
        if failing is not None:
            failing.close()
