"""Hypotheses as Python: trusted code, like a pytest test file.

Each decorated function records its patch; its docstring is the hypothesis.
"""
from autoresearch import hypothesis


@hypothesis(description="SiLU instead of ReLU squared in the MLP", tags=["activation"],
            expect={"val_bpb": "< baseline"})
def silu(patch):
    """SiLU keeps small negative activations alive; at this size expect a slightly lower loss."""
    patch.set(ACTIVATION="silu")


@hypothesis(description="no QK-norm in attention", tags=["simplify", "attention"],
            expect={"val_bpb": "< baseline + 0.002"})
def no_qk_norm(patch):
    """QK-norm guards against logit growth in long runs; in a 60-second run it may be dead
    weight. Expect no loss of quality for one line less."""
    patch.replace(
        "        q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))  # QK-norm: stable logits\n",
        "",
    )
