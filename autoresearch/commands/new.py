"""``autoresearch new``: write a TOML hypothesis file that ``run --collect-only`` accepts."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autoresearch.names import COMMIT
from autoresearch.errors import CollectError, ExpectationError, PatchError, UsageError
from autoresearch.reports import ExitCode, sign


def main(config: Any) -> int:
    path = new(config)
    print(f"wrote {path}; check it with: autoresearch run {path} --collect-only")
    return ExitCode.OK


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "_".join(words)[:48].strip("_") or "hypothesis"


def new(config: Any) -> Path:
    """Write a TOML hypothesis file that --collect-only accepts; returns its path.

    One function, in the order a user's mistakes are best reported: the patch options, the
    expectations, the draft applied to the code, the folder, the file as collection reads it."""
    import tomli_w

    from autoresearch.collect import editable_texts
    from autoresearch.kinds import registry
    from autoresearch.model import build
    from autoresearch.patches import apply_patch, raw_from_new

    opt = config.option
    kinds = registry(config)
    try:  # each patch kind reads its own option (--set, --replace, a plugin's)
        patches = raw_from_new(opt, kinds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    expect = {}
    for item in opt.expect:  # val_bpb=< baseline, or val_bpb<baseline, val_bpb <= baseline - 1%
        m = re.match(r"\s*([A-Za-z_][\w.-]*)\s*(.*)$", item)
        rest = m.group(2).strip() if m else ""
        if rest.startswith("=") and not rest.startswith("=="):
            rest = rest[1:].strip()
        if not m or not rest:
            raise UsageError(f"--expect {item!r}: write METRIC EXPR, e.g. --expect 'val_bpb < baseline'")
        expect[m.group(1)] = rest
    name = opt.name or slug(opt.description)
    raw: dict[str, Any] = {"description": opt.description}
    if getattr(opt, "file", None):
        raw["file"] = opt.file
    texts = editable_texts(config)
    try:
        draft = build({**raw, "hypothesis": "-", **patches, "expect": expect, "name": name}, "new", 1, name,
                      kinds=kinds)[0]
        patch = apply_patch(draft, texts, config.editable, config.protected, config.get("command"))
    except (CollectError, PatchError, ExpectationError) as exc:
        raise UsageError(str(exc).removeprefix("new:1: ")) from None
    metric = config.get("metric")
    change = ", ".join(f"{n} from {o} to {v}" for n, o, v in patch.changes) or opt.description
    raw["hypothesis"] = opt.text or (f"Changing {change} should give a "
                                     f"{'lower' if sign(config.get('direction')) < 0 else 'higher'} {metric}. "
                                     "(Written by autoresearch new: say why you expect it.)")
    if opt.baseline != "best":
        raw["baseline"] = opt.baseline
    raw.update(patches)
    raw["expect"] = expect or {metric: "< baseline" if sign(config.get("direction")) < 0 else "> baseline"}
    from autoresearch.config import inside

    problem = inside(opt.dir)
    if problem:
        raise UsageError(f"--dir {problem}")
    folder = config.rootdir / opt.dir
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--dir {opt.dir}: not a folder")
    try:  # the file as it will be written: collection must accept it
        build(dict(raw), "new", 1, name, kinds=kinds)
    except CollectError as exc:
        raise UsageError(str(exc).removeprefix("new:1: ")) from None
    if opt.baseline not in ("best", "initial"):
        from autoresearch.collect import collect, is_commit

        names = {h.name for h in collect(config, [folder], config.hook, warn=False)[0]} if folder.is_dir() else set()
        if opt.baseline not in names and not (COMMIT.fullmatch(opt.baseline)
                                              and is_commit(config.rootdir, opt.baseline)):
            raise UsageError(f"--baseline {opt.baseline!r} names no hypothesis in {opt.dir} and no commit "
                             "(\"best\", \"initial\", a hypothesis' name or a commit hash)")
    path = folder / f"{name}.toml"
    if path.exists():
        raise UsageError(f"{path} already exists (choose another name with --name)")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {opt.description}\n" + tomli_w.dumps(raw))
    return path
