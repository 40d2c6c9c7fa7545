"""``python -m autoresearch`` and the ``autoresearch`` console script.

The signal handlers go in before anything heavy is imported, so that Ctrl-C or SIGTERM while the
command starts ends it as 130 or 143, never as a traceback or a death by signal; and once the
command is over, a stop no longer changes how it ended.
"""
from __future__ import annotations

import sys


def main() -> int:
    from autoresearch import interrupts

    interrupts.install()
    try:
        from autoresearch.cli import main as cli_main

        status = cli_main()
        interrupts.close()
        return status
    except KeyboardInterrupt:
        interrupts.close()
        return 130
    except BaseException as exc:  # SIGTERM (Terminated) while starting up or finishing
        interrupts.close()
        if type(exc).__name__ == "Terminated":
            return 143
        raise


if __name__ == "__main__":
    sys.exit(main())
