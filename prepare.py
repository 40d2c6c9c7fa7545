"""
Fixed constants, data preparation, dataloader and evaluation for the reference workload.

Hypotheses never edit this file: it is the ground truth that makes experiments comparable.

    python prepare.py                      # byte corpus from the standard library's .py sources
    python prepare.py --source notes/ a.txt   # any local files or folders instead

The corpus is built offline (no download anywhere) and cached under ~/.cache/autoresearch/
(AUTORESEARCH_CACHE overrides it) with a manifest: the source list and a SHA-256 fingerprint of
the data. A second run with the same sources is instant and says so.

Workload knobs for demos and tests (environment variables, not hypothesis settings):
    AUTORESEARCH_TIME_BUDGET   seconds of training (default TIME_BUDGET = 300)
    AUTORESEARCH_MAX_STEPS     stop after this many optimizer steps; with it a CPU run is exactly
                               reproducible (the schedule follows steps, not the clock)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import sysconfig
import time
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Fixed constants (changing any of these makes results incomparable)

TIME_BUDGET = 300         # seconds of training, excluding start-up and compilation
SEQ_LEN = 256             # context length in bytes
VOCAB_SIZE = 256          # byte-level: every byte value is a token
EVAL_BYTES = 131_072      # size of the fixed validation slice that evaluate_bpb scores
VAL_EVERY = 10            # every 10th source file (in sorted order) goes to validation
MAX_CORPUS_BYTES = 64 * 2**20  # a cap so an oversized --source cannot exhaust memory
FORMAT_VERSION = 1        # bump when the cache layout changes

CACHE_ENV = "AUTORESEARCH_CACHE"
BUDGET_ENV = "AUTORESEARCH_TIME_BUDGET"
STEPS_ENV = "AUTORESEARCH_MAX_STEPS"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "autoresearch")


def time_budget() -> float:
    """The training budget in seconds: TIME_BUDGET unless the environment shortens it."""
    raw = os.environ.get(BUDGET_ENV)
    if not raw:
        return float(TIME_BUDGET)
    value = float(raw)
    if not value > 0:
        raise SystemExit(f"error: {BUDGET_ENV}={raw!r} must be a positive number of seconds")
    return value


def max_steps() -> int | None:
    """The step budget, if one is set; None means train until the time budget is spent."""
    raw = os.environ.get(STEPS_ENV)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"error: {STEPS_ENV}={raw!r} must be a positive whole number of steps")
    return int(raw)


# ---------------------------------------------------------------------------------------------
# Corpus: a fixed, sorted list of files, concatenated byte for byte

def default_sources() -> list[Path]:
    """The standard library's own folder: text that ships with every Python installation."""
    return [Path(sysconfig.get_paths()["stdlib"])]


SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
TEXT_SUFFIXES = {".py", ".txt", ".md", ".rst"}


def list_files(sources: list[Path]) -> list[Path]:
    """Every file named by the sources, folders expanded, in a fixed sorted order.

    Folders contribute their .py, .txt, .md and .rst files; a file named directly is always used.
    Installed packages (site-packages) and caches are skipped so the default corpus depends only
    on the Python version, not on what happens to be installed.
    """
    files: list[Path] = []
    for source in sources:
        if source.is_file():
            files.append(source)
        elif source.is_dir():
            found = []
            for folder, dirs, names in os.walk(source):
                dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
                found += [Path(folder, n) for n in names if Path(n).suffix in TEXT_SUFFIXES]
            files += sorted(found, key=lambda p: p.relative_to(source).as_posix())
        else:
            raise SystemExit(f"error: source {source} does not exist (give files or folders)")
    if not files:
        raise SystemExit("error: the sources hold no text files (.py, .txt, .md, .rst)")
    return files


def source_stamp(files: list[Path]) -> str:
    """A cheap stamp of the sources (names, sizes, modification times) to skip a rebuild."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def build(sources: list[Path], out: Path) -> dict:
    """Read the files, split them by file into train and validation, write both and a manifest."""
    files = list_files(sources)
    train, val = bytearray(), bytearray()
    train_files, val_files = [], []
    total = 0
    for i, f in enumerate(files):
        data = f.read_bytes() + b"\n"
        if total + len(data) > MAX_CORPUS_BYTES:
            break
        total += len(data)
        if i % VAL_EVERY == VAL_EVERY - 1:
            val += data
            val_files.append(str(f))
        else:
            train += data
            train_files.append(str(f))
    if len(val) < SEQ_LEN + 1 or len(train) < SEQ_LEN + 1:
        raise SystemExit(
            f"error: corpus too small ({len(train)} train / {len(val)} validation bytes); "
            f"each split needs more than {SEQ_LEN} bytes and validation takes every "
            f"{VAL_EVERY}th file, so give at least {VAL_EVERY} files"
        )
    fingerprint = hashlib.sha256(bytes(train) + b"\0split\0" + bytes(val)).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.bin").write_bytes(train)
    (out / "val.bin").write_bytes(val)
    manifest = {
        "format": FORMAT_VERSION,
        "sources": [str(s) for s in sources],
        "source_stamp": source_stamp(files),
        "train_files": train_files,
        "val_files": val_files,
        "train_bytes": len(train),
        "val_bytes": len(val),
        "sha256": fingerprint,
        "python": sys.version.split()[0],
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / "manifest.json")  # the manifest appears last: its presence means complete
    return manifest


def prepare(sources: list[Path] | None = None, out: Path | None = None) -> tuple[dict, bool]:
    """Build the cache unless it is already up to date. Returns (manifest, rebuilt)."""
    sources = [Path(s).resolve() for s in (sources or default_sources())]
    out = out or cache_dir() / "data"
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if (old.get("format") == FORMAT_VERSION and old.get("sources") == [str(s) for s in sources]
                and old.get("source_stamp") == source_stamp(list_files(sources))):
            return old, False
    return build(sources, out), True


# ---------------------------------------------------------------------------------------------
# Loading and batching (torch is imported here, not at the top: preparing needs no torch)

def load_split(split: str):
    """The cached bytes of one split as a uint8 tensor; one clear line if the cache is missing."""
    import torch

    path = cache_dir() / "data" / f"{split}.bin"
    if not (cache_dir() / "data" / "manifest.json").exists() or not path.exists():
        raise SystemExit(f"error: no prepared data in {path.parent}; run `python prepare.py` first")
    return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)


def make_batch(data, batch_size: int, generator, device):
    """Random windows of SEQ_LEN + 1 bytes: inputs and the next-byte targets (int64)."""
    import torch

    starts = torch.randint(0, len(data) - SEQ_LEN - 1, (batch_size,), generator=generator)
    windows = torch.stack([data[s:s + SEQ_LEN + 1] for s in starts.tolist()]).long()
    x, y = windows[:, :-1], windows[:, 1:]
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def evaluate_bpb(model, val_data, device, batch_size: int = 32) -> float:
    """Bits per byte of `model` on the fixed validation slice: total nats / (ln 2 × total bytes).

    `model(x)` must return logits of shape (batch, time, VOCAB_SIZE). The slice is the first
    EVAL_BYTES + 1 bytes of the validation split, cut into non-overlapping windows, so the number
    is deterministic and independent of the batch size.
    """
    import torch
    import torch.nn.functional as F

    n = min(EVAL_BYTES, len(val_data) - 1) // SEQ_LEN * SEQ_LEN
    x_all = val_data[:n].long().view(-1, SEQ_LEN)
    y_all = val_data[1:n + 1].long().view(-1, SEQ_LEN)
    total_nats = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x_all), batch_size):
            x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
            logits = model(x).float()
            nats = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            total_nats += nats.cpu().double().sum().item()  # float64 sum (MPS has no float64)
    model.train(was_training)
    return total_nats / (math.log(2) * n)


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the byte corpus for train.py (offline).")
    ap.add_argument("--source", nargs="+", type=Path, metavar="PATH",
                    help="local files or folders to use instead of the standard library's sources")
    args = ap.parse_args(argv)
    t0 = time.time()
    manifest, rebuilt = prepare(args.source)
    where = cache_dir() / "data"
    verb = "built" if rebuilt else "up to date, nothing to do:"
    print(f"{verb} {where} — {len(manifest['train_files']) + len(manifest['val_files'])} files, "
          f"{manifest['train_bytes']:,} train / {manifest['val_bytes']:,} validation bytes, "
          f"sha256 {manifest['sha256'][:16]} ({time.time() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
