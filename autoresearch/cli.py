"""The command line: ``autoresearch run | status | new | report``.

Exit codes (autoresearch.ExitCode): 0 the session completed, whatever the verdicts;
1 it stopped early at a crash (the baseline, or -x); 3 internal error; 4 usage or collection
error; 5 nothing collected; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from autoresearch import __version__, pluginmanager
from autoresearch.config import Config, Parser, find_rootdir
from autoresearch.errors import UsageError
from autoresearch.reports import ExitCode

COMMANDS = {
    "run": "collect hypothesis files and run them: baseline first, one commit each",
    "status": "a short summary of the latest run (safe to paste into an agent's context)",
    "new": "write a new TOML hypothesis file",
    "report": "Markdown tables of a run's metrics, parameters and compute, and an optional plot",
}


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see autoresearch {self.prog.split()[-1] if ' ' in self.prog else ''} --help)".replace("  ", " "))


def make_parser(parser: Parser) -> tuple[ArgumentParser, dict[str, ArgumentParser]]:
    top = ArgumentParser(prog="autoresearch", add_help=False,
                         description="Declarative, pytest-style autonomous ML research.",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    top.add_argument("-h", "--help", action="store_true", help="show this help: the commands and every run option")
    top.add_argument("--version", action="version", version=f"autoresearch {__version__}")
    sub = top.add_subparsers(dest="subcommand", metavar="COMMAND")
    subs = {name: sub.add_parser(name, help=text, description=text) for name, text in COMMANDS.items()}
    for p in subs.values():
        p.__class__ = ArgumentParser
    run = subs["run"]
    run.add_argument("file_or_dir", nargs="*", metavar="PATH", help="hypothesis files or folders (default: the "
                                                               "'paths' setting, experiments/)")
    run.add_argument("-p", dest="plugins", action="append", default=[], metavar="NAME",
                     help="load plugin module NAME early; -p no:NAME blocks a plugin (e.g. -p no:journal)")
    parser.addsetting("paths", type="list", default=["experiments"], help="where hypotheses are collected "
                                                                           "when no PATH is given")
    parser.populate(run)
    for name in ("status", "report"):
        subs[name].add_argument("--tag", default=None, help="the run to show (default: the latest)")
    subs["report"].add_argument("--plot", metavar="FILE.png", default=None,
                                help="also draw the metric per experiment: kept green and labelled, "
                                     "discarded grey, crashes red, with the running best")
    subs["report"].add_argument("--cost-per-hour", dest="cost_per_hour", type=float, metavar="RATE", default=None,
                                help="price of one GPU-hour for the cost table [cost_per_hour]")
    subs["report"].add_argument("-o", "--output", metavar="FILE.md", default=None, help="write the Markdown here")
    new = subs["new"]
    new.add_argument("description", help="one line: the commit subject")
    new.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                     help="a constant of train.py to assign; VALUE is a TOML value (0.06, 8, \"silu\", true)")
    new.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                     help="replace exact text OLD (which must occur once) with NEW")
    new.add_argument("--expect", action="append", default=[], metavar="METRIC=EXPR",
                     help='an expectation, e.g. --expect "val_bpb=< baseline - 0.001"')
    new.add_argument("--hypothesis", dest="text", default=None,
                     help="what you expect and why (default: asked for in the file as a TODO that "
                          "collection rejects until written)")
    new.add_argument("--name", default=None, help="the hypothesis name and file stem (default: from the description)")
    new.add_argument("--dir", default="experiments", help="where to write the file (default: experiments)")
    new.add_argument("--baseline", default="best", help='"best" (default), "initial" or a hypothesis name')
    return top, subs


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rootdir = find_rootdir(Path.cwd())
        pm = pluginmanager.build(rootdir, argv)
        parser = Parser()
        pm.hook.autoresearch_addoption.call_historic(kwargs=dict(parser=parser))
        top, subs = make_parser(parser)
        args = top.parse_args(argv)
        if args.help or not args.subcommand:
            print_help(top, subs, parser)
            return ExitCode.OK if args.help else ExitCode.USAGE_ERROR
        config = Config(rootdir, pm, parser, args)
        pm.hook.autoresearch_configure.call_historic(kwargs=dict(config=config))
    except UsageError as exc:
        print(f"autoresearch: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    try:
        return guarded(lambda: COMMAND_FUNCS[args.subcommand](config))
    finally:
        pm.hook.autoresearch_unconfigure(config=config)


def print_help(top: argparse.ArgumentParser, subs: dict[str, argparse.ArgumentParser], parser: Parser) -> None:
    top.print_help()
    print("\n" + "=" * 100 + "\n")
    subs["run"].print_help()
    print("\n[tool.autoresearch] settings in pyproject.toml (a flag, where shown, overrides the setting):")
    for s in sorted(parser.settings.values(), key=lambda s: s.name):
        flag = f" ({s.flags[0]})" if s.flags else ""
        print(f"  {s.name}{flag} = {s.default!r}\n      {s.help}")
    print("\nMore: autoresearch COMMAND --help (status, new, report).")


def guarded(fn: Callable[[], int]) -> int:
    """Map what can go wrong to an exit code: one line for a user's error, a traceback for ours."""
    try:
        return fn()
    except UsageError as exc:
        print(f"autoresearch: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception:
        traceback.print_exc()
        print("autoresearch: internal error (the traceback above is a bug in autoresearch or a plugin)",
              file=sys.stderr)
        return ExitCode.INTERNAL_ERROR


# -------------------------------------------------------------------------------------------
# run


def order_by_baseline(items: list[Any]) -> list[Any]:
    """A hypothesis whose baseline is another hypothesis runs after it (stable otherwise)."""
    by_name = {h.name: h for h in items}
    ordered: list[Any] = []
    placed: set[str] = set()

    def place(h: Any, stack: tuple[str, ...]) -> None:
        if h.name in placed:
            return
        dep = by_name.get(h.baseline)
        if dep is not None and dep.name not in stack:
            place(dep, stack + (h.name,))
        placed.add(h.name)
        ordered.append(h)

    for h in items:
        place(h, ())
    return ordered


def show_collection(config: Config, items: list[Any]) -> None:
    from autoresearch.collect import editable_texts
    from autoresearch.patching import apply_patch

    texts = editable_texts(config)
    for h in items:
        patch = apply_patch(h, texts, config.editable, config.protected)
        added, removed = patch.counts
        what = [f"{n} {o} → {v}" for n, o, v in patch.changes]
        what += [f"replace {len(h.replace)} text{'s' if len(h.replace) > 1 else ''}"] if h.replace else []
        what += ["diff"] if h.diff else []
        expect = "; ".join(f"{m} {e}" for m, e in h.expect)
        print(f"{h.nodeid}\n    {', '.join(what) or 'no change'}  (+{added} -{removed} lines)"
              + (f"\n    expect {expect}" if expect else ""))
    noun = "hypothesis" if len(items) == 1 else "hypotheses"
    print(f"\n{len(items)} {noun} collected; every patch applies to {', '.join(config.editable)}")


def cmd_run(config: Config) -> int:
    from autoresearch.collect import collect
    from autoresearch.runner import Lock, Terminated, install_sigterm, run_session
    from autoresearch.session import Session

    session = Session(config)
    paths = config.option.file_or_dir or config.get("paths")
    # a PATH given on the command line is relative to the current folder; a setting, to the root
    base = Path.cwd() if config.option.file_or_dir else config.rootdir
    session.paths = [(base / p).absolute() for p in paths]
    items, errors = collect(config, session.paths, config.hook)
    config.hook.autoresearch_collection_modifyitems(session=session, config=config, items=items)
    session.items = order_by_baseline(items)
    config.hook.autoresearch_collection_finish(session=session)
    if errors:
        for err in errors:
            print(f"ERROR {err}", file=sys.stderr)
        print(f"{len(errors)} error{'s' if len(errors) > 1 else ''} during collection: nothing ran", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if config.getoption("collect_only"):
        show_collection(config, session.items)
        return ExitCode.OK if session.items else ExitCode.NO_HYPOTHESES_COLLECTED
    if not session.items and not config.getoption("watch"):
        where = ", ".join(str(p) for p in paths)
        print(f"no hypotheses collected from {where} (write .toml or .py hypothesis files, "
              "e.g. with autoresearch new)", file=sys.stderr)
        return ExitCode.NO_HYPOTHESES_COLLECTED
    previous = install_sigterm()
    try:
        with Lock(config.state_dir / "lock", session.tag):
            status: int = ExitCode.INTERNAL_ERROR
            started = False
            try:
                open_run(session)
                started = True
                config.hook.autoresearch_sessionstart(session=session)
                if not session.initial_commit and not session.history:
                    session.initial_commit = session.tip
                    session.protected_hashes = session.protected_digest()
                    session.append_ledger({"event": "session", "initial_commit": session.tip,
                                           "protected": session.protected_hashes})
                status = run_session(session)
            except KeyboardInterrupt:
                status = ExitCode.INTERRUPTED
            except Terminated:
                status = ExitCode.TERMINATED
            except UsageError as exc:
                print(f"autoresearch: error: {exc}", file=sys.stderr)
                status = ExitCode.USAGE_ERROR
            except OSError as exc:  # a full disk, a read-only folder: stop cleanly, lose nothing
                where = f" ({exc.filename})" if exc.filename else ""
                print(f"autoresearch: error: {exc.strerror or exc}{where}; the experiment in progress was not "
                      "recorded and runs again: fix this, then continue with --resume", file=sys.stderr)
                status = ExitCode.STOPPED
            finally:
                if session.shouldstop:
                    print(f"autoresearch: stopped: {session.shouldstop}", file=sys.stderr)
                if started:
                    config.hook.autoresearch_sessionfinish(session=session, exitstatus=status)
            return status
    except Terminated:
        return ExitCode.TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


def open_run(session: Any) -> None:
    """Start a new run folder for the tag, or load the one being resumed."""
    config = session.config
    current = config.state_dir / "current"
    if session.resume and not config.getoption("tag") and current.is_file():
        session.tag = current.read_text().strip()
    exists = session.ledger_path.is_file()
    if exists and not session.resume:
        raise UsageError(f"run tag {session.tag!r} already exists; continue it with --resume, or start "
                         f"a new run with --tag NAME")
    if session.resume and not session.run_dir.is_dir():  # a folder without a ledger: killed at its start
        runs = sorted(p.name for p in (config.state_dir / "runs").glob("*") if p.is_dir())
        raise UsageError(f"no run tagged {session.tag!r} to resume (runs here: {', '.join(runs) or 'none'})")
    session.run_dir.mkdir(parents=True, exist_ok=True)
    current.write_text(session.tag + "\n")
    if exists:
        session.load()
        kill_stale_workload(session)


def kill_stale_workload(session: Any) -> None:
    """A runner killed mid-run leaves its workload training: stop that process group."""
    from autoresearch.execute import kill_group

    pidfile = session.run_dir / "workload.pid"
    if not pidfile.is_file():
        return
    pid = int(pidfile.read_text().strip() or 0)
    try:
        cwd = os.path.realpath(f"/proc/{pid}/cwd")
    except OSError:
        return
    if pid and cwd.startswith(str(session.run_dir.resolve())):
        kill_group(pid, grace=1.0)


# -------------------------------------------------------------------------------------------


def cmd_status(config: Config) -> int:
    from autoresearch.commands import status

    print(status(config))
    return ExitCode.OK


def cmd_new(config: Config) -> int:
    from autoresearch.commands import new

    path = new(config)
    print(f"wrote {path}; check it with: autoresearch run {path} --collect-only")
    return ExitCode.OK


def cmd_report(config: Config) -> int:
    from autoresearch.commands import report

    text = report(config)
    out = config.getoption("output")
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}")
    else:
        print(text)
    return ExitCode.OK


COMMAND_FUNCS: dict[str, Callable[[Config], int]] = {"run": cmd_run, "status": cmd_status, "new": cmd_new,
                                                      "report": cmd_report}


def load_reports(config: Config, tag: str | None = None) -> tuple[str, list[Any]]:
    """The finished reports of a run (default: the latest), read from its ledger."""
    from autoresearch.session import Session

    current = config.state_dir / "current"
    tag = tag or (current.read_text().strip() if current.is_file() else None)
    if not tag:
        raise UsageError(f"no runs yet in {config.state_dir} (start one with autoresearch run)")
    session = Session(config)
    session.tag = tag
    if not session.ledger_path.is_file():
        raise UsageError(f"no run tagged {tag!r} in {config.state_dir}")
    session.load()
    return tag, sorted(session.history, key=lambda r: r.seq)
