"""The shapes of names, written once: hypothesis names, metric names, commit hashes, Python
constants, and the slug a name becomes in file names and git refs."""
from __future__ import annotations

import re
import unicodedata

COMMIT = re.compile(r"[0-9a-f]{7,40}")  # a commit hash as git log prints it, abbreviated or whole
METRIC = re.compile(r"[A-Za-z_][\w.-]{0,99}", re.ASCII)  # a metric as the log prints it: val_bpb, loss.train
PYTHON_NAME = re.compile(r"[A-Za-z_]\w{0,99}", re.ASCII)  # a module-level constant: LR, n_layer
NAME_RULE = "1 to 100 letters, digits, '_', '-' and '.', at least one letter or digit"
_NAME_EXTRA = "_-."


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a hypothesis, or None.

    Letters and digits of any script (``lernrate_ö``), ``_``, ``-`` and ``.`` (so that a file
    ``lr0.02.toml`` names its hypothesis ``lr0.02``), written in composed form (NFC, so that two
    names that look alike are alike), at most 100 characters, at least one letter or digit.
    """
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        return "not a string of 1 to 100 characters"
    if unicodedata.normalize("NFC", name) != name:
        return "letters not in composed form (NFC; write é, not e and a combining accent)"
    if not all(c.isalnum() or c in _NAME_EXTRA for c in name) or not any(c.isalnum() for c in name):
        return "a character that is not a letter, digit, '_', '-' or '.'"
    return None


def slug(name: str) -> str:
    """A name as it appears in file names and git refs: letters, digits, '_' and '-' (``lr[0.02]`` -> ``lr-0-02``).

    One rule for the experiment's log (``003-lr-0-02.log``) and its ref (``refs/autoresearch/TAG/003-lr-0-02``).
    """
    return re.sub(r"[^A-Za-z0-9_]+", "-", name)[:60].strip("-") or "x"
