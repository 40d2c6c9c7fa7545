"""The keep rule's two thresholds and the noise floor they give, in one line: what `status`, the
terminal, `report` and `calibrate` print. Apart from autoresearch/stats.py (which decides with them)
so that `status` need not import the statistics and the report types to print one line."""
from __future__ import annotations

import math

KEEP_AT = 1.3  # keep at once beyond KEEP_AT k standard errors
FINAL_AT = 0.8  # on the means at max_repeats: keep beyond FINAL_AT k standard errors


def floor(sigma: float | None, df: int, metric: str, k: float, repeats: int, max_repeats: int) -> str:
    """The noise floor in one line, for status, the terminal and calibrate."""
    if sigma is None:
        return f"noise: not measured yet (no commit has run twice; the baseline runs {repeats} times)"
    if sigma == 0:
        return f"noise: none ({metric} was the same in every repeated run): the plain comparison decides"
    one = KEEP_AT * k * sigma * math.sqrt(1 + 1 / repeats)
    means = FINAL_AT * k * sigma * math.sqrt(1 / max_repeats + 1 / repeats)
    return (f"noise: σ {sigma:.2g} {metric} ({df} degrees of freedom); kept: beating the tip by ≥ {one:.2g} in one "
            f"run, or by ≥ {means:.2g} on the means of {max_repeats} runs")
