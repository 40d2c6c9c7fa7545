"""-k expressions, as pytest's: substrings of a hypothesis's node id and tags, with and / or /
not / parentheses."""
from __future__ import annotations

import re

from autoresearch.errors import UsageError


def _tokenize(expr: str) -> list[str]:
    return re.findall(r"\(|\)|[^\s()]+", expr)


def keyword_matcher(expr: str):
    tokens = _tokenize(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise UsageError(f"-k {expr!r}: unexpected end of expression")
        pos += 1
        return tokens[pos - 1]

    def binary(word: str, operand, combine):
        """operand (word operand)*, folded left with combine: 'or' over 'and' over 'not'."""
        def parse():
            left = operand()
            while peek() == word:
                take()
                left = (lambda a, b: lambda s: combine(a(s), b(s)))(left, operand())
            return left
        return parse

    def parse_or():
        return binary("or", binary("and", parse_not, lambda a, b: a and b), lambda a, b: a or b)()

    def parse_not():
        if peek() == "not":
            take()
            inner = parse_not()
            return lambda s: not inner(s)
        tok = take()
        if tok == "(":
            inner = parse_or()
            if peek() != ")":
                raise UsageError(f"-k {expr!r}: missing ')'")
            take()
            return inner
        if tok in ("and", "or", ")"):
            raise UsageError(f"-k {expr!r}: unexpected {tok!r} (write words joined by and, or, not)")
        word = tok.lower()
        return lambda s: word in s

    if not tokens:
        raise UsageError("-k needs an expression")
    if len(tokens) > 500:
        raise UsageError(f"-k: an expression of {len(tokens)} words and parentheses (at most 500)")
    try:
        matcher = parse_or()
    except RecursionError:
        raise UsageError("-k: the expression is nested too deep") from None
    if pos != len(tokens):
        raise UsageError(f"-k {expr!r}: unexpected {tokens[pos]!r}")
    return lambda h: matcher((h.nodeid + " " + " ".join(h.tags)).lower())
