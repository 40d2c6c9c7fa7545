"""autoresearch: a pytest-style, declarative framework for autonomous ML research.

Write hypothesis files; ``autoresearch run experiments/`` runs each as one git commit of
``train.py``, trains for a fixed budget, reads the metric, and keeps or discards the commit.
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marks a plugin function as a hook implementation: ``@hookimpl(tryfirst=True)``.
hookimpl = pluggy.HookimplMarker("autoresearch")

from autoresearch.errors import CollectError, ExpectationError, PatchError, UsageError  # noqa: E402
from autoresearch.model import Hypothesis, Patch, hypothesis  # noqa: E402
from autoresearch.reports import ExitCode, Report, RunResult, Verdict  # noqa: E402

__all__ = [
    "CollectError", "ExitCode", "ExpectationError", "Hypothesis", "Patch", "PatchError", "Report",
    "RunResult", "UsageError", "Verdict", "__version__", "hookimpl", "hypothesis",
]
