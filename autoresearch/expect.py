"""Expectations: a tiny grammar, parsed and evaluated without ``eval``.

    expectation := OP target
    OP          := "<" | "<=" | ">" | ">=" | "==" | "!="
    target      := NUMBER | "baseline" [ ("+" | "-" | "*" | "/") NUMBER ["%"] ]

Examples: ``< baseline - 0.001``, ``<= baseline * 1.1``, ``< baseline - 1%``, ``< 0.05``.
A percentage after ``+`` or ``-`` is relative to the baseline (``baseline - 1%`` is 0.99 ×).
"""
from __future__ import annotations

import functools
import math
import operator
import re
from dataclasses import dataclass
from typing import Callable

from autoresearch.errors import ExpectationError

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq, "!=": operator.ne}
ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
TOKEN = re.compile(r"\s*(?:(?P<op><=|>=|==|!=|<|>)|(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                   r"|(?P<word>[A-Za-z_]+)|(?P<sym>[-+*/%]))")
HELP = ('write OP then a number or "baseline", optionally "+ - * /" a number: '
        '"< baseline - 0.001", "<= baseline * 1.1", "< 0.05"')


@dataclass(frozen=True)
class Expectation:
    op: str
    number: float | None = None  # set when the target is a plain number
    arith: str | None = None  # set when the target is "baseline <arith> operand"
    operand: float | None = None
    percent: bool = False
    text: str = ""

    def target(self, baseline: float | None) -> float | None:
        if self.number is not None:
            return self.number
        if baseline is None:
            return None
        if self.arith is None:
            return baseline
        assert self.operand is not None
        operand = baseline * self.operand / 100 if self.percent else self.operand
        return ARITH[self.arith](baseline, operand)

    def check(self, value: float | None, baseline: float | None, metric: str,
              se: float | None = None, k: float = 2.0) -> tuple[str, str]:
        """(confirmed | refuted | inconclusive, reason in words) for one metric's value.

        `se` is the standard error of ``value - target`` (None or 0 without noise); an order
        comparison that holds or fails by less than `k` of them is inconclusive.
        """
        if value is None:
            return "refuted", f"{metric} was not printed by the run"
        target = self.target(baseline if self.number is None else None)
        if target is None:
            return "refuted", f"the baseline printed no {metric} to compare with"
        met = OPS[self.op](value, target) and not math.isnan(value)
        rel = f" ({self.text[len(self.op):].strip()}, baseline {baseline:.6g})" if self.arith else ""
        spread = f" ± {se:.2g}" if se else ""
        words = f"{metric} {value:.6g}{spread} {'' if met else 'not '}{self.op} {target:.6g}{rel}"
        if se and self.op in ("<", "<=", ">", ">=") and abs(value - target) < k * se:
            return "inconclusive", f"{words}: within the noise"
        return ("confirmed" if met else "refuted"), words


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpectationError(f"cannot read {text[pos:].strip()!r} in {text!r} ({HELP})")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_expectation(text: str) -> Expectation:
    """Parse one expectation, raising :class:`ExpectationError` with a hint if it is invalid."""
    if not isinstance(text, str):
        raise ExpectationError(f"expected a string, got {type(text).__name__} ({HELP})")
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Expectation:
    """An expectation (immutable) parsed once per text: 1,000 hypothesis files mostly say "< baseline"."""
    toks = _tokens(text)
    if not toks or toks[0][0] != "op":
        raise ExpectationError(f"{text!r} does not start with a comparison ({HELP})")
    op = toks[0][1]
    rest = toks[1:]
    norm = " ".join(t for _, t in toks)
    if len(rest) == 1 and rest[0][0] == "num":
        return Expectation(op, number=float(rest[0][1]), text=norm)
    if not rest or rest[0] != ("word", "baseline"):
        raise ExpectationError(f"{text!r}: after {op!r} comes a number or \"baseline\" ({HELP})")
    rest = rest[1:]
    if not rest:
        return Expectation(op, text=norm)
    # "baseline - 0.001" tokenizes the sign into the number; split it back out
    if rest[0][0] == "num" and rest[0][1][0] in "+-":
        rest = [("sym", rest[0][1][0]), ("num", rest[0][1][1:])] + rest[1:]
    if len(rest) < 2 or rest[0][0] != "sym" or rest[0][1] not in ARITH or rest[1][0] != "num":
        raise ExpectationError(f"{text!r}: after \"baseline\" comes + - * or / and a number ({HELP})")
    percent = len(rest) == 3 and rest[2] == ("sym", "%")
    if len(rest) > 3 or (len(rest) == 3 and not percent):
        raise ExpectationError(f"{text!r}: unexpected text after the number ({HELP})")
    if percent and rest[0][1] not in "+-":
        raise ExpectationError(f"{text!r}: a percentage goes with + or - (\"< baseline - 1%\")")
    operand = float(rest[1][1])
    if rest[0][1] == "/" and operand == 0:
        raise ExpectationError(f"{text!r}: division by zero")
    return Expectation(op, arith=rest[0][1], operand=operand, percent=percent, text=norm)


def evaluate(expect: tuple[tuple[str, str], ...], metrics: dict[str, float], baseline: dict[str, float],
             se: Callable[[str, bool], float | None] | None = None,
             k: float = 2.0) -> tuple[str | None, tuple[str, ...]]:
    """(confirmed | refuted | inconclusive | None when nothing was expected, reasons one per metric).

    Judged on the means; `se(metric, against_baseline)` gives the standard error of the
    comparison. Any refuted metric refutes the hypothesis; otherwise any inconclusive one makes
    it inconclusive (the data cannot tell).
    """
    if not expect:
        return None, ()
    reasons, outcomes = [], []
    for metric, text in expect:
        expectation = parse_expectation(text)
        error = se(metric, expectation.number is None) if se else None
        outcome, why = expectation.check(metrics.get(metric), baseline.get(metric), metric, error, k)
        outcomes.append(outcome)
        reasons.append(why)
    for word in ("refuted", "inconclusive"):
        if word in outcomes:
            return word, tuple(reasons)
    return "confirmed", tuple(reasons)
