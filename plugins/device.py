"""device: ``require_device = "cuda"`` — never train on the CPU by mistake.

A GPU job whose CUDA wheel or driver did not load falls back to the CPU silently and trains all
night for nothing. With ``require_device = "cuda"`` (or ``--require-device cuda``) the session
checks that nvidia-smi lists a GPU before anything is written, and a run whose summary names
another device (``device: cpu``, as the reference train.py prints it) is a crash with cause
``device``, whichever executor ran it.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from autoresearch import hookimpl
from autoresearch.errors import UsageError
from autoresearch.reports import Cause
from autoresearch.supervise import read_tail


@hookimpl
def autoresearch_addoption(parser) -> None:
    parser.addsetting("require_device", "--require-device", default="", choices=("", "cuda"),
                      help="refuse to train anywhere else: cuda checks for a GPU (nvidia-smi) before anything "
                           "runs, and a run whose summary says another device (a `device: cpu` line: the CUDA "
                           "wheel or driver did not load) is a crash; default: any device")


DEVICE_LINE = re.compile(r"^device:[ \t]+(\S+)", re.MULTILINE)


@hookimpl
def autoresearch_preflight(config) -> None:
    """require_device = "cuda" on a machine without a GPU: one line, before anything is written."""
    if config.get("require_device") == "cuda":
        from autoresearch.loop import gpus

        if not gpus():
            raise UsageError("require_device = \"cuda\" but this machine has no GPU that nvidia-smi lists (no "
                             "driver, or no GPU): nothing ran. Run on a GPU machine, or drop require_device")


@hookimpl(wrapper=True)
def autoresearch_experiment_run(experiment):
    """Whichever executor ran it: a run that trained on another device than require_device is a crash."""
    result = yield
    wanted = experiment.session.config.get("require_device")
    if wanted and not result.cause and result.returncode == 0 and result.log_path:
        found = DEVICE_LINE.findall(read_tail(Path(result.log_path), 16384))
        if found and found[-1].split(":")[0] != wanted:
            return replace(result, cause=Cause.DEVICE, message=f"trained on {found[-1]}, not on the required "
                           f"{wanted} (require_device): the GPU was not used (a CPU-only torch, a driver problem?)")
    return result
