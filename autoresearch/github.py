"""What a run shows on GitHub: a pull request of the research branch against main (opened, or
updated when one is open), and the job's summary page (``$GITHUB_STEP_SUMMARY``).

The pull request goes through the ``gh`` CLI when it is on PATH (its own login, or ``$GH_TOKEN``),
else through the REST API with ``$GITHUB_TOKEN`` (``$GITHUB_API_URL``, default
https://api.github.com): urllib, no dependency. The repository is ``$GITHUB_REPOSITORY`` (set in
every Actions job), else read from the remote's URL.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError

MAX_BODY = 60_000  # characters: GitHub refuses a body over 65536
TIMEOUT = 30.0  # seconds for one API call


def repository(root: Path, remote: str) -> str:
    """owner/name of the GitHub repository: $GITHUB_REPOSITORY, else the remote's URL."""
    if os.environ.get("GITHUB_REPOSITORY"):
        return os.environ["GITHUB_REPOSITORY"]
    url = subprocess.run(["git", "remote", "get-url", remote], cwd=root, capture_output=True, text=True).stdout
    m = re.search(r"github\.com[:/]([^/\s]+)/([^/\s]+?)(?:\.git)?/?\s*$", url)
    if not m:
        raise UsageError(f"--pr: which GitHub repository? remote {remote!r} is not on github.com "
                         f"({url.strip() or 'no URL'}); set GITHUB_REPOSITORY=owner/name")
    return f"{m.group(1)}/{m.group(2)}"


def body_of(text: str) -> str:
    if len(text) <= MAX_BODY:
        return text
    return text[:MAX_BODY] + "\n\n… (cut: the whole report is in the job's artefact, report.md)"


def open_or_update(repo: str, head: str, base: str, title: str, body: str) -> tuple[str, str]:
    """The pull request of branch `head` into `base`: updated (title, body) when one is open, else
    opened. Returns ("opened" or "updated", its URL)."""
    if shutil.which("gh"):
        return _with_gh(repo, head, base, title, body_of(body))
    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if not token:
        raise UsageError("--pr needs the gh CLI on PATH or a token in $GITHUB_TOKEN (in a workflow: "
                         "env: GITHUB_TOKEN: ${{ github.token }}, with permissions pull-requests: write)")
    return _with_api(repo, head, base, title, body_of(body), token)


def _gh(*args: str) -> str:
    proc = subprocess.run(["gh", *args], capture_output=True, text=True)
    if proc.returncode:
        raise UsageError(f"gh {' '.join(args[:2])}: {proc.stderr.strip()[:300] or f'exit code {proc.returncode}'}")
    return proc.stdout.strip()


def _with_gh(repo: str, head: str, base: str, title: str, body: str) -> tuple[str, str]:
    found = json.loads(_gh("pr", "list", "--repo", repo, "--head", head, "--base", base, "--state", "open",
                           "--json", "number,url", "--limit", "1") or "[]")
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write(body)
    try:
        if found:
            _gh("pr", "edit", str(found[0]["number"]), "--repo", repo, "--title", title, "--body-file", f.name)
            return "updated", found[0]["url"]
        out = _gh("pr", "create", "--repo", repo, "--head", head, "--base", base, "--title", title,
                  "--body-file", f.name)
        return "opened", out.splitlines()[-1] if out else ""
    finally:
        os.unlink(f.name)


def api(method: str, url: str, token: str, data: dict[str, Any] | None = None) -> Any:
    """One REST call: its JSON answer, or one line saying what GitHub refused."""
    request = urllib.request.Request(url, method=method, data=json.dumps(data).encode() if data is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                              "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "autoresearch",
                                              **({"Content-Type": "application/json"} if data is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        try:
            detail = json.loads(detail).get("message", detail)
        except (ValueError, AttributeError):
            pass
        hint = " (the token needs pull-requests: write)" if exc.code in (401, 403) else ""
        raise UsageError(f"GitHub API {method} {urllib.parse.urlsplit(url).path}: {exc.code} {detail}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UsageError(f"GitHub API {method} {url}: {getattr(exc, 'reason', exc)}") from None


def _with_api(repo: str, head: str, base: str, title: str, body: str, token: str) -> tuple[str, str]:
    root = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    owner = repo.split("/")[0]
    query = urllib.parse.urlencode({"head": f"{owner}:{head}", "base": base, "state": "open"})
    found = api("GET", f"{root}/repos/{repo}/pulls?{query}", token)
    if isinstance(found, list) and found:
        pr = api("PATCH", f"{root}/repos/{repo}/pulls/{found[0]['number']}", token, dict(title=title, body=body))
        return "updated", pr.get("html_url", "")
    pr = api("POST", f"{root}/repos/{repo}/pulls", token, dict(title=title, head=head, base=base, body=body))
    return "opened", pr.get("html_url", "")


def plot_url(record_commit: str, name: str = "progress.png") -> str | None:
    """Where GitHub shows a file of the record commit to a signed-in reader (private repositories
    too), when run in Actions; None elsewhere."""
    server, repo = os.environ.get("GITHUB_SERVER_URL", "https://github.com"), os.environ.get("GITHUB_REPOSITORY")
    return f"{server}/{repo}/blob/{record_commit}/{name}?raw=true" if repo and record_commit else None


def step_summary(text: str) -> bool:
    """Append Markdown to the job's summary page ($GITHUB_STEP_SUMMARY); False outside Actions."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")
    return True

