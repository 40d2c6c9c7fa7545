"""The patch engine, by its earlier name: the kinds now live in :mod:`autoresearch.patches`
(one module each); these names stay importable from here."""
from __future__ import annotations

from autoresearch.patches import PatchResult, apply_patch, describe, patch_kinds
from autoresearch.patches.diff import apply_diff, check_diff_paths, diff_files
from autoresearch.patches.replace import apply_replace
from autoresearch.patches.set import apply_set, assignments, exponent, render

__all__ = ["PatchResult", "apply_diff", "apply_patch", "apply_replace", "apply_set", "assignments", "check_diff_paths",
           "describe", "diff_files", "exponent", "patch_kinds", "render"]
