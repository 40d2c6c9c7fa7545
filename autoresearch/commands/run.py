"""``autoresearch run``: collect the hypotheses and run them, in the session wrapper (main.py)."""
from __future__ import annotations

from typing import Any


def main(config: Any) -> int:
    from autoresearch.main import wrap_session

    return wrap_session(config, lambda config, session: config.hook.autoresearch_runloop(session=session))
