"""``autoresearch ci``: one night of research that continues the last one (autoresearch/ci.py does
the git work, autoresearch/github.py the pull request and the summary page).

    restore the run (the folder here, --from-export, or the record on the remote)
    -> nothing new? say so, exit 0
    -> autoresearch run --tag TAG [--resume] --junitxml OUT/junit.xml RUN_ARGS
    -> OUT/report.md, OUT/progress.png, OUT/record.tar.gz (the export: the artefact)
    -> push the branch and the record; --pr: open or update the pull request; the summary page
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from autoresearch.errors import UsageError
from autoresearch.reports import ExitCode, Status, printable

#: what ci sets on the run itself
OWN_FLAGS = ("--tag", "--resume", "--junitxml", "--junit-xml", "--collect-only", "--co", "--watch")


def add_options(ci: Any) -> None:
    """``autoresearch ci``'s own flags (cli.py builds its parser)."""
    import argparse

    ci.add_argument("--branch", default=None, help="the research branch, autoresearch/TAG: the run it continues "
                                                   "[ci_branch, default autoresearch/nightly]")
    ci.add_argument("--remote", default="origin", help="where the branch and its record live (default: origin)")
    ci.add_argument("--from-export", dest="from_export", metavar="FILE", default=None,
                    help="continue from this export (the last night's artefact) instead of the record on the remote")
    ci.add_argument("--out", metavar="DIR", default=None, help="where the night's files go: record.tar.gz (the "
                    "export), junit.xml, report.md, progress.png (default: autoresearch-ci)")
    ci.add_argument("--pr", action="store_true", help="open, or update, the pull request of the branch into --base "
                                                     "(gh when on PATH, else the REST API with $GITHUB_TOKEN)")
    ci.add_argument("--base", default=None, help="the branch the pull request goes into [ci_base, default main]")
    ci.add_argument("--no-push", dest="no_push", action="store_true",
                    help="push nothing (a dry night: the export and the report are still written)")
    ci.add_argument("run_args", nargs=argparse.REMAINDER, metavar="-- RUN OPTIONS",
                    help="after --: options and paths for autoresearch run (e.g. -- --budget 300 "
                         "--require-device cuda experiments/); ci sets --tag, --resume and --junitxml itself")


def run_args(config: Any) -> list[str]:
    args = list(config.getoption("run_args") or [])
    args = args[1:] if args[:1] == ["--"] else args
    for arg in args:
        if arg.split("=")[0] in OWN_FLAGS:
            raise UsageError(f"autoresearch ci -- {arg.split('=')[0]}: ci sets it itself (the run is the "
                             "research branch's, continued; see autoresearch ci --help)")
    return args


def main(config: Any) -> int:
    from autoresearch import ci
    from autoresearch.gitrepo import common_dir, exclude

    branch = config.getoption("branch") or config.get("ci_branch", "autoresearch/nightly")
    tag, remote = ci.tag_of(branch), config.getoption("remote") or "origin"
    args = run_args(config)
    if config.getoption("pr") and config.getoption("no_push"):
        raise UsageError("ci --pr --no-push: a pull request needs the branch pushed (drop one of them)")
    out = Path(config.getoption("out") or "autoresearch-ci")
    out = out if out.is_absolute() else Path.cwd() / out
    resumed = ci.restore(config, tag, remote, config.getoption("from_export"), print)
    new, collected = ci.undecided(config.rootdir, args, tag, resumed)
    if resumed and not new:
        line = (f"nothing new since the last night: the {collected} hypothes{'i' if collected == 1 else 'e'}s "
                f"collected were all decided in run {tag} (branch {branch}); nothing ran")
        print(line)
        from autoresearch.github import step_summary

        step_summary(f"## autoresearch: nothing new\n\n{line}\n")
        return ExitCode.OK
    print(f"{len(new)} hypothes{'i' if len(new) == 1 else 'e'}s to run on {branch}"
          + (" (continuing it)" if resumed else " (a new run: the baseline first)") + ": " + ", ".join(new[:8])
          + (f", … and {len(new) - 8} more" if len(new) > 8 else ""))
    out.mkdir(parents=True, exist_ok=True)
    git_dir = common_dir(config.rootdir)
    if git_dir and out.resolve().is_relative_to(config.rootdir.resolve()):
        exclude(git_dir, [str(out.resolve().relative_to(config.rootdir.resolve()))])
    started = time.time()
    rc = ci.run(config.rootdir, tag, resumed, out / "junit.xml", args)
    if rc not in (ExitCode.OK, ExitCode.STOPPED) or not (config.state_dir / "runs" / tag / "ledger.jsonl").is_file():
        return rc  # a usage error, a stop, a bug: nothing to carry (the run said why)
    bring_home(config, tag, branch, remote, out, started)
    return rc


def bring_home(config: Any, tag: str, branch: str, remote: str, out: Path, started: float) -> None:
    """After the night's run: the report and plot, the export, the push, the pull request, the summary page."""
    from autoresearch import ci
    from autoresearch.github import body_of, open_or_update, repository, step_summary

    config.option.tag = tag
    report = write_report(config, out)
    tonight = [r for r in _history(config, tag) if r.started >= started]
    if config.getoption("no_push"):
        from autoresearch.share import export

        record = ""
        export(config, str(out / ci.RECORD_FILE), print)
    else:
        record = ci.carry(config, tag, remote, out, print)
    body, pr = pr_body(config, tag, branch, tonight, report, record), ""
    if config.getoption("pr"):
        base = config.getoption("base") or config.get("ci_base", "main")
        how, pr = open_or_update(repository(config.rootdir, remote), branch, base, title(config, tag), body)
        print(f"{how} the pull request of {branch} into {base}: {pr}")
    if step_summary(body_of(body) + (f"\n\nPull request: {pr}\n" if pr else "")):
        print("wrote the report to the job's summary page ($GITHUB_STEP_SUMMARY)")


def _history(config: Any, tag: str) -> list[Any]:
    from autoresearch.session import Session

    return Session.open_existing(config, tag).history


def write_report(config: Any, out: Path) -> str:
    """OUT/report.md (``autoresearch report``) and OUT/progress.png when matplotlib is there."""
    from autoresearch.commands.report import report
    from autoresearch.commands.status import load_reports

    text = report(config)
    (out / "report.md").write_text(text)
    try:
        from autoresearch.commands.plot import plot

        tag, done = load_reports(config)
        plot(done, out / "progress.png", config.state_dir / "runs" / tag / "curves")
    except UsageError as exc:  # no matplotlib: the report goes without its plot
        (out / "progress.png").unlink(missing_ok=True)
        print(f"autoresearch: note: no plot ({exc})", file=sys.stderr)
    return text


def title(config: Any, tag: str) -> str:
    from autoresearch.commands.status import load_reports
    from autoresearch.reports import best_kept

    _, done = load_reports(config)
    kept = [r for r in done if r.status == Status.KEEP and not r.is_baseline]
    best = best_kept(done)
    shown = f", best {best.metric} {best.value:.6g}" if best is not None and best.value is not None else ""
    return printable(f"autoresearch {tag}: {len(kept)} kept of {len(done) - 1} hypotheses{shown}")[:200]


def pr_body(config: Any, tag: str, branch: str, tonight: list[Any], report: str, record: str) -> str:
    """The pull request's body and the summary page: tonight's results, the plot, the report."""
    from autoresearch.commands.report import md
    from autoresearch.github import plot_url

    lines = [f"Research branch `{branch}`, continued every night by `autoresearch ci`: merging this pull request "
             f"brings its kept commits home. Tonight: {len(tonight)} experiment{'s' if len(tonight) != 1 else ''}.",
             "", "| # | status | " + md(config.get("metric")) + " | description |", "|---|---|---|---|"]
    for r in tonight:
        value = f"{r.value:.6f}" if r.value is not None and r.status != Status.CRASH else "—"
        lines.append(f"| {r.seq} | {r.status} | {value} | {md(r.description[:80])} |")
    url = plot_url(record)
    if url:
        lines += ["", f"![{md(config.get('metric'))} per experiment]({url})"]
    lines += ["", f"The run's record: branch `autoresearch-record/{tag}` (`record.tar.gz`: `autoresearch import` it).",
              "", report]
    return "\n".join(lines)
