"""The queue ``status`` shows (the hypotheses collected now), kept in the state folder
(``index-queue.json``) while nothing collection reads has changed, so that a ``status`` starts
without the collectors, the patch kinds and the TOML parser.

Only for what collection reads as data: the built-in plugins alone collect (no ``conftest.py``, ``-p``
or installed plugin implements ``autoresearch_collect_file`` or ``autoresearch_patch_kinds``), no Python hypothesis file under the paths (importing one runs its code), no
hypothesis whose baseline is a commit (git answers that). The index is bound
(:mod:`autoresearch.runindex`) to the settings, the code, and the size, time and inode of every
hypothesis file found and of the editable files a patch is checked against; the files are found
again at every call (a new or removed file changes the binding). It is written only when every
one of those files was last changed more than two seconds before (a file changed again within
its clock's tick could keep its time), and only if they are unchanged after collecting.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

RACY_NS = 2_000_000_000


def queue(config: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(node id, key) of every hypothesis collected now, and the collection errors (as text);
    UsageError as collection raises it."""
    from autoresearch import runindex, startup
    from autoresearch.finding import find_files

    paths = [config.rootdir / p for p in config.get("paths")]
    if not isinstance(config.pluginmanager, startup.Plugins) and not builtin_collection(config):
        return collect_now(config, paths)[:2]  # a plugin besides the built-in ones collects
    files = find_files(paths, config)
    if any(f.suffix == ".py" for f in files):
        return collect_now(config, paths)[:2]
    bound, racy = binding(config, files)
    found = runindex.read(config.state_dir, "queue", bound)
    if found is not None:
        return [tuple(x) for x in found["items"]], found["errors"]
    items, errors, pure = collect_now(config, paths)
    if pure and not racy and config.state_dir.is_dir():
        body = json.dumps({"data": dict(items=items, errors=errors)})
        runindex.write(config.state_dir, "queue", bound, body, lambda: binding(config, files)[0])
    return items, errors


def builtin_collection(config: Any) -> bool:
    """Whether only the built-in plugins collect and declare patch kinds (the plugins loaded)."""
    from autoresearch.pluginmanager import BUILTIN, ESSENTIAL

    names = {impl.plugin_name for hook in (config.hook.autoresearch_collect_file, config.hook.autoresearch_patch_kinds)
             for impl in hook.get_hookimpls()}
    return not names - {*ESSENTIAL, *BUILTIN}


def collect_now(config: Any, paths: list[Path]) -> tuple[list[tuple[str, str]], list[str], bool]:
    """Collect: (node id, key) of each hypothesis, the errors as text, and whether the result is
    the files' alone (no baseline that is a commit, which git answers)."""
    from autoresearch.collect import collect

    items, errors = collect(config, paths, config.hook, warn=False)
    names = {h.name for h in items}
    pure = all(h.baseline in ("best", "initial") or h.baseline in names for h in items)
    return [(h.nodeid, h.key) for h in items], [str(e) for e in errors], pure


def binding(config: Any, files: list[Path]) -> tuple[str, bool]:
    """What the queue is made from, hashed, and whether a file changed too recently to be trusted."""
    from autoresearch.startup import code_id

    now, racy = time.time_ns(), False
    parts = [code_id(), repr(sorted(config.settings().items())), str(config.rootdir)]
    editable = [config.rootdir / name for name in [*config.editable, "autoresearch.args.toml"]]
    for path in [*files, *editable]:
        try:
            st = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else ""
            # ctime too: a file rewritten at the same size with its old mtime put back (touch -r,
            # rsync -t --inplace) still changes it, and nobody can set it back
            parts.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_mode}\0"
                         f"{link}\0{os.path.realpath(path)}")
            racy = racy or now - st.st_mtime_ns < RACY_NS
        except OSError:
            parts.append(f"{path}\0missing")
    return hashlib.sha256("\n".join(parts).encode("utf-8", "backslashreplace")).hexdigest(), racy
