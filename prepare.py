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
# The protected evaluator (autoresearch's evaluate setting): the candidate's code never runs here.

LOGITS_ENV = "AUTORESEARCH_LOGITS"  # "INPUTS:OUTPUTS": train.py writes its model's logits and exits
CAUSAL_WINDOWS = 2                  # windows checked for causality, each with its later bytes changed


def evaluate(output: Path, timeout: float = 900.0) -> int:
    """Score the model a run left in `output` (model.pt, written by train.py), as evaluate_bpb does,
    without running the candidate's code in this process: a separate process (the candidate's
    train.py, in the sandbox autoresearch hands over in AUTORESEARCH_SANDBOX) only turns byte
    windows into logits; this process holds the data and computes the bits per byte itself, and
    checks on a few windows that the logits at position t do not change when the bytes after t do
    (a model that peeks at the next byte fails)."""
    import json
    import subprocess
    import tempfile

    import torch
    import torch.nn.functional as F

    if not (output / "model.pt").is_file():
        print(f"error: {output}/model.pt is missing: the run saved no model (train.py writes it at the end)")
        return 1
    val = load_split("val")
    n = min(EVAL_BYTES, len(val) - 1) // SEQ_LEN * SEQ_LEN
    x, y = val[:n].long().view(-1, SEQ_LEN), val[1:n + 1].long().view(-1, SEQ_LEN)
    g = torch.Generator().manual_seed(0)
    t = SEQ_LEN // 2
    probes = x[:CAUSAL_WINDOWS].clone()
    probes[:, t + 1:] = torch.randint(0, VOCAB_SIZE, (CAUSAL_WINDOWS, SEQ_LEN - t - 1), generator=g)
    inputs = torch.cat([x, probes])
    prefix = json.loads(os.environ.get("AUTORESEARCH_SANDBOX") or "[]")
    # the exchange with the candidate's process: in the folder its sandbox may write (autoresearch's
    # AUTORESEARCH_SCRATCH), never a path of ours it could otherwise not reach
    with tempfile.TemporaryDirectory(prefix="evaluate-", dir=os.environ.get("AUTORESEARCH_SCRATCH")) as scratch:
        inp, out = Path(scratch, "inputs.pt"), Path(scratch, "logits.pt")
        torch.save(inputs, inp)
        env = {**os.environ, LOGITS_ENV: f"{inp}:{out}"}
        env.pop("AUTORESEARCH_SANDBOX", None)
        cmd = [*prefix, sys.executable, str(output / "train.py")]
        try:
            proc = subprocess.run(cmd, cwd=output, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"error: the model gave no logits within {timeout:.0f}s")
            return 1
        if proc.returncode or not out.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            print(f"error: the model gave no logits (exit code {proc.returncode}): {' | '.join(tail)[:300]}")
            return 1
        logits = torch.load(out, weights_only=True)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(inputs), SEQ_LEN, VOCAB_SIZE):
        print(f"error: logits of shape {getattr(logits, 'shape', type(logits).__name__)}, expected "
              f"{(len(inputs), SEQ_LEN, VOCAB_SIZE)}")
        return 1
    logits = logits.float()
    same = logits[:CAUSAL_WINDOWS, :t + 1]
    changed = logits[len(x):, :t + 1]
    if not torch.isfinite(logits).all():
        print("error: the logits are not all finite")
        return 1
    if (same - changed).abs().max().item() > 1e-3 * max(1.0, same.abs().max().item()):
        print(f"error: not causal: the logits at positions up to {t} change when only the bytes after {t} do")
        return 1
    nats = F.cross_entropy(logits[:len(x)].reshape(-1, VOCAB_SIZE), y.reshape(-1), reduction="sum").item()
    print("---")
    print(f"val_bpb:          {nats / (math.log(2) * n):.6f}")
    print(f"eval_bytes:       {n}")
    return 0


def serve_logits(model, device, spec: str, batch_size: int = 32) -> None:
    """train.py's side of the evaluator: read byte windows, write the model's logits (float16)."""
    import torch

    inputs, outputs = spec.split(":", 1)
    x_all = torch.load(inputs, weights_only=True)
    model.eval()
    chunks = []
    with torch.no_grad():
        for i in range(0, len(x_all), batch_size):
            chunks.append(model(x_all[i:i + batch_size].to(device)).float().cpu().half())
    torch.save(torch.cat(chunks), outputs)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        if len(argv) != 2:
            print("usage: prepare.py evaluate OUTPUT_FOLDER", file=sys.stderr)
            return 2
        return evaluate(Path(argv[1]))
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
