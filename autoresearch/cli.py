"""The command line: ``autoresearch run | status | show | diff | new | report | calibrate | init | export | import | publish | ci``.
Arguments only: each command is a module of autoresearch/commands/, and every exit code main.guard's.

Exit codes (autoresearch.ExitCode): 0 the session completed, whatever the verdicts;
1 it stopped early (the baseline crashed, -x met a crash, git failed, the disk is full);
3 internal error; 4 usage or collection error; 5 nothing collected; 130 interrupted (Ctrl-C);
141 the output was closed (| head); 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from autoresearch import __version__, commands, interrupts, startup
from autoresearch.config import Config, Parser, find_rootdir
from autoresearch.errors import UsageError
from autoresearch.main import guard
from autoresearch.outcomes import ExitCode
from autoresearch.runargs import add_paths_setting, add_run_arguments

# argparse translates each of its own words (usage:, options, ...) with gettext, which looks for a
# catalog on disk at every call: about 40 look-ups, a fifth of --help. A word's translation is the
# same for the whole process (the language is read from the environment), so each is looked up once.
argparse._ = functools.lru_cache(maxsize=256)(argparse._)  # type: ignore[attr-defined]

COMMANDS = {
    "run": "collect hypothesis files and run them: baseline first, one commit each",
    "status": "a short summary of the latest run (safe to paste into an agent's context)",
    "show": "one table of experiments: what each changed, its metrics (mean ± SE, n), status and expectation",
    "diff": "two experiments (or runs' tips) side by side: the code diff, parameters and metrics, with "
            "the difference and whether it is beyond the noise",
    "new": "write a new TOML hypothesis file",
    "report": "Markdown tables of a run's metrics, parameters and compute, and an optional plot",
    "calibrate": "run the unmodified code N times and print its noise, the smallest improvement the "
                 "verdict settings can detect, and what they cost in experiments per hour",
    "export": "one file holding a run: its commits (a git bundle), results, ledger, logs, journal and lessons",
    "import": "bring a run that autoresearch export wrote into this clone (status and report then show it)",
    "publish": "push a run's branch (with --all, every experiment's ref) and print its results in Markdown",
    "ci": "one night of research that continues the last one: restore the research branch's run (from the "
          "remote or --from-export), run only the hypotheses it has not decided, push the branch and its record, "
          "and with --pr open or update the pull request (docs/ci.md)",
    "init": "set up this repository: a commented [tool.autoresearch] table with what it detects and TODOs "
            "for the rest, experiments/ with one example, and program.md for an LLM agent (never overwrites)",
}


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if len(message) > 300:  # argparse quotes the value it refused whole: one line stays readable
            message = message[:280] + "…'" + ("" if message.endswith("'") else message[message.rfind("'") + 1:][:20])
        raise UsageError(f"{message} (see autoresearch {self.prog.split()[-1] if ' ' in self.prog else ''} --help)".replace("  ", " "))


def make_parser(parser: Parser, only: set[str] | None = None) -> tuple[ArgumentParser, dict[str, ArgumentParser]]:
    """The top parser and one per command (the run's options from the settings): one table of
    arguments, long, read top to bottom as --help prints it. With `only`, just those commands take
    their arguments: a command line names one, and the others are listed all the same."""
    top = ArgumentParser(prog="autoresearch", add_help=False,
                         description="Declarative, pytest-style autonomous ML research.",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    top.add_argument("-h", "--help", action="store_true", help="show this help: the commands and every run option")
    top.add_argument("--version", action="version", version=f"autoresearch {__version__}")
    sub = top.add_subparsers(dest="subcommand", metavar="COMMAND")
    want = set(COMMANDS) if only is None else only
    # A command line naming one command (no help to print) needs only its parser: each costs gettext's look-ups.
    named = COMMANDS if only is None or None in only or len(only) > 1 else {n: t for n, t in COMMANDS.items() if n in only}
    subs = {name: sub.add_parser(name, help=text, description=text) for name, text in named.items()}
    for p in subs.values():
        p.__class__ = ArgumentParser
    if "run" in want:
        add_run_arguments(subs["run"], parser)
    else:
        add_paths_setting(parser)  # every command reads it
    want &= set(subs)
    for name in {"status", "report"} & want:
        subs[name].add_argument("--tag", default=None, help="the run to show (default: the latest)")
        subs[name].add_argument("--json", action="store_true", help="print it as JSON, for agents and scripts")
    add_show_options(subs["show"] if "show" in want else None, subs["diff"] if "diff" in want else None)
    if "status" in want:
        add_status_options(subs["status"])
    if "report" in want:
        add_report_options(subs["report"])
    if {"export", "import", "publish", "init"} & want:
        add_share_options(subs)
    if "ci" in want:
        from autoresearch.commands.ci import add_options

        add_options(subs["ci"])
    if "calibrate" in want:
        cal = subs["calibrate"]
        cal.add_argument("--runs", type=int, default=5, metavar="N",
                         help="runs of the unmodified code, seeds 0 to N-1 (default: 5; from 2 to 1,000)")
        parser.populate(cal, only={"budget", "budget_steps", "timeout", "command", "noise_k", "repeats", "max_repeats"})
    if "new" in want:
        add_new_options(subs["new"])
    return top, subs


def add_status_options(status: ArgumentParser) -> None:
    status.add_argument("--follow", "-f", action="store_true",
                        help="keep showing the run as it goes: drawn again in place on a terminal, one line "
                             "per change when piped; ends when the run does, or at Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="seconds between looks with --follow (default: 2)")


def add_report_options(report: ArgumentParser) -> None:
    report.add_argument("--plot", metavar="FILE.png", default=None,
                        help="also draw the metric per experiment: kept green and labelled, "
                             "discarded grey, crashes red, with the running best")
    report.add_argument("--cost-per-hour", dest="cost_per_hour", type=float, metavar="RATE", default=None,
                        help="price of one GPU-hour for the cost table, from 0 to 1,000,000 [cost_per_hour]")
    report.add_argument("-o", "--output", metavar="FILE.md", default=None, help="write the Markdown here")


def add_share_options(subs: dict[str, ArgumentParser]) -> None:
    """export, import, publish and init (those of them in `subs`)."""
    if "export" in subs:
        _add_export(subs["export"])
    if "import" in subs:
        _add_import(subs["import"])
    if "publish" in subs:
        _add_publish(subs["publish"])
    if "init" in subs:
        subs["init"].add_argument("--command", dest="init_command", metavar="CMD", default=None,
                                  help="the workload's command line, e.g. \"python train.py config/x.py\": written as "
                                       "the command setting, and a config file it passes is the editable file")


def _add_export(export: ArgumentParser) -> None:
    export.add_argument("--tag", default=None, help="the run to export (default: the latest)")
    export.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="where to write it (default: autoresearch-TAG.tar.gz)")


def _add_import(imp: ArgumentParser) -> None:
    imp.add_argument("file", metavar="FILE", help="a file autoresearch export wrote")
    imp.add_argument("--max-size", metavar="SIZE", default=None,
                     help="refuse an archive that unpacks to more, in all (default: 2G; bytes, or K, M, "
                          "G, T); checked from its headers before anything is written")
    imp.add_argument("--max-member-size", metavar="SIZE", default=None,
                     help="refuse an archive with a member larger than this unpacked, a sparse one at "
                          "its real size (default: 1G)")


def _add_publish(publish: ArgumentParser) -> None:
    publish.add_argument("--tag", default=None, help="the run to publish (default: the latest)")
    publish.add_argument("--remote", default="origin", help="the git remote to push to (default: origin)")
    publish.add_argument("--all", action="store_true",
                         help="also push every experiment's commit, as refs/autoresearch/TAG/NNN-name")
    publish.add_argument("--pr", action="store_true",
                         help="also open, or update, the pull request of the branch into --base, the report "
                              "as its body (the gh CLI when on PATH, else the REST API with $GITHUB_TOKEN)")
    publish.add_argument("--base", default=None, help="the branch the pull request goes into [ci_base, default main]")


def add_new_options(new: ArgumentParser) -> None:
    new.add_argument("description", help="one line: the commit subject")
    from autoresearch.patches import add_new_options as add_kind_options, builtin_kinds

    add_kind_options(new, builtin_kinds())  # each patch kind's own option: --set, --replace
    new.add_argument("--expect", action="append", default=[], metavar="METRIC=EXPR",
                     help='an expectation, e.g. --expect "val_bpb < baseline - 0.001" (or val_bpb=< ...); '
                          'default: the metric better than its baseline')
    new.add_argument("--hypothesis", dest="text", default=None,
                     help="what you expect and why (default: a sentence naming the change and the "
                          "direction expected, marked as written by autoresearch new: replace it with your reason)")
    new.add_argument("--name", default=None, help="the hypothesis name and file stem (default: from the description)")
    new.add_argument("--file", default=None, metavar="PATH",
                     help="the editable file the patch changes (default: the first editable file; for --key, the "
                          "only editable YAML, JSON or TOML file)")
    new.add_argument("--dir", default="experiments", help="where to write the file (default: experiments)")
    new.add_argument("--baseline", default="best", help='"best" (default), "initial" or a hypothesis name')


def add_show_options(show: ArgumentParser | None, diff: ArgumentParser | None) -> None:
    """The options of ``show`` and ``diff`` (autoresearch/commands/show.py, diff.py), of those given."""
    if show is not None:
        _add_show(show)
    if diff is not None:
        _add_diff(diff)


def _add_show(show: ArgumentParser) -> None:
    show.add_argument("--tag", default=None, help="the run to show (default: the latest)")
    show.add_argument("--all", action="store_true", help="every run here, one after the other, with a tag column")
    show.add_argument("-k", dest="keyword", metavar="EXPR", default=None,
                      help="only experiments whose node id or description match EXPR (as run -k: substrings "
                           "with and, or, not, parentheses)")
    show.add_argument("--status", default=None, metavar="S,S",
                      help="only these outcomes: keep, discard, crash, interrupted, pruned (comma-separated)")
    show.add_argument("--sort", default=None, metavar="COL",
                      help="sort by a column: a metric, a parameter, seq, name, status, expectation, duration; "
                           "--sort=-COL sorts descending (default: in the order they ran)")
    for fmt, what in (("md", "a Markdown table"), ("csv", "CSV, one row per experiment"),
                      ("json", "JSON: every row whole, for agents and scripts")):
        show.add_argument(f"--{fmt}", action="store_true", help=f"print {what}")


def _add_diff(diff: ArgumentParser) -> None:
    diff.add_argument("a", metavar="A", help="an experiment: its number (#3), name, TAG:NAME, or a tag (that "
                                             "run's tip, its last kept experiment)")
    diff.add_argument("b", metavar="B", help="the other one, as A")
    diff.add_argument("--tag", default=None, help="the run A and B are looked up in (default: the latest)")
    diff.add_argument("--json", action="store_true", help="print it as JSON, for agents and scripts")
    diff.add_argument("--no-code", dest="code", action="store_false", help="leave out the code diff")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code. The signal handlers go in here unless the entry point
    (``__main__``) put them in first; whoever installed them puts back the previous ones (an
    in-process caller's) or, at the end of the process, ignores the signals from then on."""
    argv = list(sys.argv[1:] if argv is None else argv)
    owner = interrupts.install()
    try:
        return guard(lambda: _main(argv))
    finally:
        if owner:
            interrupts.restore()
        else:
            interrupts.close()


def _main(argv: list[str]) -> int:
    startup.begin_command()
    rootdir = find_rootdir(Path.cwd())
    command, option_first = startup.command_of(argv)
    only = {command, "run"} if command is None or option_first else {command}  # --help shows the run's options
    light = startup.light(rootdir, argv, command if command is None or command in COMMANDS else "", plugin_manager)
    if light is not None:  # status, show, diff, --help: the plugins load only if a hook is called
        pm, parser = light
    else:
        pm, parser = load_plugins(rootdir, argv)
    top, subs = make_parser(parser, only if command in COMMANDS or command is None else None)
    args = top.parse_args(argv)
    if args.help or not args.subcommand:
        print_help(top, subs, parser)
        return ExitCode.OK if args.help else ExitCode.USAGE_ERROR
    if args.subcommand == "init":  # before the settings are read: they may not exist yet
        return commands.module("init").main(rootdir, args.init_command)
    config = Config(rootdir, pm, parser, args)
    if light is not None:  # nothing to configure: no plugin is loaded
        return commands.module(args.subcommand).main(config)
    pm.hook.autoresearch_configure.call_historic(kwargs=dict(config=config))
    try:
        return commands.module(args.subcommand).main(config)
    finally:
        pm.hook.autoresearch_unconfigure(config=config)


def load_plugins(rootdir: Path, argv: list[str]) -> tuple[Any, Parser]:
    """Every plugin this command line asks for, and the settings they declare; with only the built-in
    plugins, what they declared is kept for the commands that start without them (autoresearch/startup.py)."""
    from autoresearch import pluginmanager

    pm = pluginmanager.build(rootdir, argv)
    parser = Parser()
    recorder = None if startup.externals(rootdir, argv) else startup.Recorder(parser)
    pm.hook.autoresearch_addoption.call_historic(kwargs=dict(parser=parser))
    if recorder is not None:
        startup.save(pm, recorder, {**pluginmanager.ESSENTIAL, **pluginmanager.BUILTIN})
    return pm, parser


def plugin_manager() -> Any:
    """An empty plugin manager, the hooks declared (a light command's plugins load into it)."""
    from autoresearch.pluginmanager import PluginManager

    return PluginManager()


def print_help(top: argparse.ArgumentParser, subs: dict[str, argparse.ArgumentParser], parser: Parser) -> None:
    top.print_help()
    print("\n" + "=" * 100 + "\n")
    subs["run"].print_help()
    print("\n[tool.autoresearch] settings in pyproject.toml (a flag, where shown, overrides the setting):")
    for s in sorted(parser.settings.values(), key=lambda s: s.name):
        flag = f" ({s.flags[0]})" if s.flags else ""
        print(f"  {s.name}{flag} = {s.default!r}\n      {s.help}")
    print("\nMore: autoresearch COMMAND --help (status, show, diff, new, report, calibrate, init, export, import, publish, ci).")
