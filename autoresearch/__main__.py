"""``python -m autoresearch`` and the ``autoresearch`` console script: ``sys.exit(cli.main())``.

The signal handlers go in at the entry point's first instruction, before anything that can take
time is imported: a Ctrl-C or SIGTERM while the command starts waits for it and ends it as 130 or
143, never as a traceback or a death by signal (autoresearch/interrupts.py). Importing this
module installs nothing.
"""
import sys


def main() -> int:
    from autoresearch import interrupts  # the standard library's signal and threading, and errors.py

    interrupts.install()
    from autoresearch import cli

    try:
        return cli.main()
    finally:
        forget_interrupted_exec()


def forget_interrupted_exec() -> None:
    """Keep ``python -m autoresearch``'s exit code once the command has ended (its stops ignored).

    CPython marks a KeyboardInterrupt that ends an ``exec`` or ``eval`` of a string (dataclasses
    and namedtuple make their methods so, as a module is imported) as unhandled, for the whole
    process, even when it is caught; under ``-m`` an exit with SystemExit then kills the process
    with SIGINT instead: a Ctrl-C as the command started exited -2, not 130. Each exec of a
    string clears the mark as it starts, so one more, of nothing, clears it.
    """
    exec("")  # noqa: S102 - a constant empty string


if __name__ == "__main__":
    sys.exit(main())
