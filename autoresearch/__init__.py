"""autoresearch: a pytest-style, declarative framework for autonomous ML research.

Write hypothesis files; ``autoresearch run experiments/`` runs each as one git commit of
``train.py``, trains for a fixed budget, reads the metric, and keeps or discards the commit.

The public names below are imported on first use (PEP 562), so that starting the command line
costs only what it uses, and the signal handlers are installed before anything heavy loads.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "CollectError": "autoresearch.errors", "ExpectationError": "autoresearch.errors",
    "PatchError": "autoresearch.errors", "UsageError": "autoresearch.errors",
    "Hypothesis": "autoresearch.model", "Patch": "autoresearch.decorator", "hypothesis": "autoresearch.decorator",
    "ExitCode": "autoresearch.reports", "Report": "autoresearch.reports", "RunResult": "autoresearch.reports",
    "Sample": "autoresearch.reports", "Verdict": "autoresearch.reports", "Cause": "autoresearch.reports",
    "Status": "autoresearch.reports", "PatchKind": "autoresearch.patches",
}

__all__ = sorted([*_PUBLIC, "__version__", "hookimpl"])


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        import pluggy

        #: Marks a plugin function as a hook implementation: ``@hookimpl(tryfirst=True)``.
        value: Any = pluggy.HookimplMarker("autoresearch")
    elif name in _PUBLIC:
        import importlib

        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'autoresearch' has no attribute {name!r}")
    globals()[name] = value
    return value
