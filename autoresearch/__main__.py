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

    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
