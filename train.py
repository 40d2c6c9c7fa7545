"""
The reference workload: a small byte-level GPT trained for a fixed time budget.

This is the one file hypotheses change. Its hyperparameters are the plain module-level constants
below, which `set` patches assign by name; everything else can be changed with `replace` or
`diff` patches. prepare.py (data, budget, evaluate_bpb) is fixed and never edited.

    python prepare.py && python train.py

Output: progress lines while training, then a summary block after `---`, one `name: value` a
line, which the runner reads (val_bpb is the metric, lower is better).
"""
import time

T0 = time.time()  # start-up is measured from here, before torch is imported

import math
import os
import resource
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import prepare

# ---------------------------------------------------------------------------------------------
# Hyperparameters (plain constants: `set` patches assign these by name)

# Model size, as fits a 2-core CPU in 60 s. An H100 affords far more in its 300 s, so on CUDA
# the sizes are multiplied by the CUDA_* factors; a hypothesis that changes DEPTH changes it on
# every device. MPS uses the CPU sizes.
DEPTH = 4                 # transformer blocks
MODEL_DIM = 128           # width of the residual stream; width / N_HEAD must be even
N_HEAD = 4                # attention heads
MLP_RATIO = 4             # MLP hidden width as a multiple of the model width
ACTIVATION = "relu2"      # MLP activation: "relu2" (ReLU squared), "gelu" or "silu"
CONTEXT = 128             # bytes of each SEQ_LEN window used for training (<= prepare.SEQ_LEN)

# Optimisation (AdamW with one learning rate per parameter kind)
BATCH_SIZE = 32           # sequences per step
EMBED_LR = 0.02           # learning rate of the byte embedding
MATRIX_LR = 0.006         # learning rate of the attention and MLP matrices
HEAD_LR = 0.004           # learning rate of the output head
WEIGHT_DECAY = 0.0        # AdamW weight decay on the matrices (0 disables it)
ADAM_BETAS = (0.9, 0.95)  # AdamW (beta1, beta2)
GRAD_CLIP = 1.0           # clip the gradient norm to this (0 disables clipping)
WARMUP_RATIO = 0.02       # fraction of the budget spent ramping the LR up from 0
WARMDOWN_RATIO = 0.4      # fraction of the budget, at the end, spent decaying the LR to 0
UNTIMED_STEPS = 3         # first steps not counted against the budget (compilation, warm-up)
SEED = 1337               # seed of the weights and of the batch order

# On CUDA only: the sizes above times these (8 x 512 wide, 256 sequences a step on an H100)
CUDA_DEPTH_SCALE = 2      # depth multiplier
CUDA_WIDTH_SCALE = 4      # width multiplier
CUDA_BATCH_SCALE = 8      # batch size multiplier

# ---------------------------------------------------------------------------------------------
# Device: what differs on CUDA is decided by the functions below from the device's facts
# (tests/test_cuda_path.py passes made-up ones, so the CUDA path runs on a machine without a GPU)

PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}  # dense bf16 FLOP/s


def pick_device(cuda_available, mps_available):
    return torch.device("cuda" if cuda_available else "mps" if mps_available else "cpu")


def device_plan(cuda, device_name="", bf16_supported=False):
    """The sizes (the CUDA_*_SCALE factors on CUDA), the autocast dtype (bf16 on a GPU that has it;
    None: no autocast), TF32, torch.compile, the fused optimizer, and the peak FLOP/s MFU divides by."""
    return dict(depth=DEPTH * (CUDA_DEPTH_SCALE if cuda else 1), width=MODEL_DIM * (CUDA_WIDTH_SCALE if cuda else 1),
                batch_size=BATCH_SIZE * (CUDA_BATCH_SCALE if cuda else 1),
                autocast_dtype=torch.bfloat16 if cuda and bf16_supported else None, tf32=cuda, compile=cuda,
                fused=cuda, peak_flops=next((v for k, v in PEAK_FLOPS.items() if cuda and k in device_name), 0.0))


def set_precision(plan):
    if plan["tf32"]:  # TF32 matmuls and convolutions: fp32 code at tensor-core speed
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def make_autocast(plan):
    if plan["autocast_dtype"] is not None:
        return torch.autocast("cuda", dtype=plan["autocast_dtype"])
    return torch.autocast("cpu", enabled=False)


def synchronize(cuda):
    """What waits for the device before a step is timed (nothing to wait for on the CPU)."""
    return torch.cuda.synchronize if cuda else (lambda: None)


def peak_memory_mb(cuda, max_allocated=None):
    """CUDA: the peak allocated by torch; CPU / MPS: the process's peak resident memory (ru_maxrss:
    KiB on Linux, bytes on macOS)."""
    if cuda:
        return max_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def mfu_percent(flops_per_token, timed_tokens, training_time, peak_flops):
    """Model FLOPs utilisation: the training FLOP/s achieved, in percent of the device's peak (0: unknown)."""
    return 100 * flops_per_token * timed_tokens / training_time / peak_flops if peak_flops and training_time else 0.0


device = pick_device(torch.cuda.is_available(), torch.backends.mps.is_available())
CUDA = device.type == "cuda"
if os.environ.get("AUTORESEARCH_THREADS"):  # the runner's share of the cores when workers run side by side
    torch.set_num_threads(int(os.environ["AUTORESEARCH_THREADS"]))
plan = device_plan(CUDA, torch.cuda.get_device_name() if CUDA else "", CUDA and torch.cuda.is_bf16_supported())
depth, width, batch_size = plan["depth"], plan["width"], plan["batch_size"]
assert width % N_HEAD == 0 and (width // N_HEAD) % 2 == 0, "width / N_HEAD must be even"
assert 1 <= CONTEXT <= prepare.SEQ_LEN, f"CONTEXT must be in 1..{prepare.SEQ_LEN}"
seed = SEED + int(os.environ.get("AUTORESEARCH_SEED", "0"))  # the runner's n-th run of a commit: SEED + n
torch.manual_seed(seed)
set_precision(plan)
autocast = make_autocast(plan)
sync = synchronize(CUDA)

# ---------------------------------------------------------------------------------------------
# Model: pre-norm GPT with rotary positions, QK-norm and SDPA attention


def rotary(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, n_head):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).unbind(2)
        q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))  # QK-norm: stable logits
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, MLP_RATIO * dim, bias=False)
        self.proj = nn.Linear(MLP_RATIO * dim, dim, bias=False)

    def forward(self, x):
        x = self.fc(x)
        if ACTIVATION == "relu2":
            x = F.relu(x).square()
        elif ACTIVATION == "gelu":
            x = F.gelu(x)
        elif ACTIVATION == "silu":
            x = F.silu(x)
        else:
            raise ValueError(f"unknown ACTIVATION {ACTIVATION!r} (relu2, gelu or silu)")
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, n_head):
        super().__init__()
        self.attn = Attention(dim, n_head)
        self.mlp = MLP(dim)

    def forward(self, x, cos, sin):
        x = x + self.attn(F.rms_norm(x, (x.size(-1),)), cos, sin)
        return x + self.mlp(F.rms_norm(x, (x.size(-1),)))


class GPT(nn.Module):
    def __init__(self, depth, dim, n_head):
        super().__init__()
        self.embed = nn.Embedding(prepare.VOCAB_SIZE, dim)
        self.blocks = nn.ModuleList(Block(dim, n_head) for _ in range(depth))
        self.head = nn.Linear(dim, prepare.VOCAB_SIZE, bias=False)
        half = dim // n_head // 2
        inv_freq = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / half))
        angles = torch.outer(torch.arange(prepare.SEQ_LEN, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", angles.sin()[None, :, None, :], persistent=False)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.zeros_(p)  # residual branches start as the identity
            elif p.dim() == 2:
                nn.init.normal_(p, std=0.02 if "embed" in name else dim ** -0.5)

    def forward(self, idx):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(F.rms_norm(x, (x.size(-1),)))


def loss_fn(model, x, y):
    with autocast:
        logits = model(x)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))


def lr_multiplier(progress):
    """Linear warm-up, constant, then linear warm-down to zero; progress runs from 0 to 1."""
    if progress < WARMUP_RATIO:
        return (progress + 1e-3) / (WARMUP_RATIO + 1e-3)
    if progress > 1 - WARMDOWN_RATIO:
        return max(0.0, (1 - progress) / WARMDOWN_RATIO)
    return 1.0


# ---------------------------------------------------------------------------------------------
# Setup

model = GPT(depth, width, N_HEAD).to(device)
if os.environ.get(prepare.LOGITS_ENV):  # the protected evaluator asks for this model's logits, nothing more
    model.load_state_dict(torch.load("model.pt", map_location=device, weights_only=True))
    with autocast:
        prepare.serve_logits(model, device, os.environ[prepare.LOGITS_ENV])
    sys.exit(0)
train_data, val_data = prepare.load_split("train"), prepare.load_split("val")
budget, step_budget = prepare.time_budget(), prepare.max_steps()
num_params = sum(p.numel() for p in model.parameters())
matrices = [p for n, p in model.blocks.named_parameters() if p.dim() == 2]
optimizer = torch.optim.AdamW([
    dict(params=model.embed.parameters(), lr=EMBED_LR, weight_decay=0.0),
    dict(params=matrices, lr=MATRIX_LR, weight_decay=WEIGHT_DECAY),
    dict(params=model.head.parameters(), lr=HEAD_LR, weight_decay=0.0),
], betas=ADAM_BETAS, eps=1e-10, fused=plan["fused"])
for group in optimizer.param_groups:
    group["initial_lr"] = group["lr"]
train_model = torch.compile(model) if plan["compile"] else model  # compile on CUDA only
generator = torch.Generator().manual_seed(seed)
# Training FLOPs per token: 6 per parameter plus attention (forward and backward).
flops_per_token = 6 * num_params + 12 * depth * width * CONTEXT
print(f"device {device} | depth {depth} | width {width} | params {num_params / 1e6:.2f}M | "
      f"batch {batch_size}x{CONTEXT} | budget {budget:g}s" + (f" | steps {step_budget}" if step_budget else ""),
      flush=True)

# ---------------------------------------------------------------------------------------------
# Training loop: the budget counts training time after the first UNTIMED_STEPS steps

step, training_time, tokens = 0, 0.0, 0
startup_seconds = time.time() - T0
while True:
    progress = step / step_budget if step_budget else training_time / budget
    if progress >= 1.0:
        break
    sync()
    t_step = time.time()
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lr_multiplier(progress)
    x, y = prepare.make_batch(train_data, batch_size, generator, device)
    x, y = x[:, :CONTEXT], y[:, :CONTEXT]
    loss = loss_fn(train_model, x, y)
    loss.backward()
    if GRAD_CLIP > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss_value = loss.item()  # also synchronises the device
    if not math.isfinite(loss_value) or loss_value > 100:
        print(f"step {step:05d} | loss {loss_value} | diverged")
        print("FAIL")
        sys.exit(1)
    dt = time.time() - t_step
    if step >= UNTIMED_STEPS:
        training_time += dt
    step += 1
    tokens += batch_size * CONTEXT
    if step <= 5 or step % 20 == 0:
        done = step / step_budget if step_budget else training_time / budget
        remaining = max(0.0, budget - training_time) if not step_budget else dt * (step_budget - step)
        print(f"step {step:05d} ({100 * done:.1f}%) | loss {loss_value:.6f} | "
              f"lr x{lr_multiplier(progress):.2f} | dt {1000 * dt:.0f}ms | "
              f"tok/s {batch_size * CONTEXT / dt:,.0f} | remaining {remaining:.0f}s", flush=True)
if step == 0:
    print("FAIL: no training step ran")
    sys.exit(1)

# ---------------------------------------------------------------------------------------------
# Evaluation and summary

val_bpb = prepare.evaluate_bpb(model, val_data, device)
torch.save(model.state_dict(), "model.pt")  # what the protected evaluator scores (prepare.py evaluate)
if not math.isfinite(val_bpb):
    print("FAIL")
    sys.exit(1)
peak_memory = peak_memory_mb(CUDA, torch.cuda.max_memory_allocated)
timed_tokens = tokens * max(0, step - UNTIMED_STEPS) / step
mfu = mfu_percent(flops_per_token, timed_tokens, training_time, plan["peak_flops"])
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_time:.1f}")
print(f"total_seconds:    {time.time() - T0:.1f}")
print(f"startup_seconds:  {startup_seconds:.1f}")
print(f"peak_vram_mb:     {peak_memory:.1f}")
print(f"mfu_percent:      {mfu:.2f}")
print(f"total_tokens_M:   {tokens / 1e6:.1f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.1f}")
print(f"depth:            {depth}")
print(f"device:           {device}")
