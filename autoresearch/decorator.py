"""The Python API: ``@hypothesis`` marks a function, which records its changes on a :class:`Patch`."""
from __future__ import annotations

import sys
from typing import Any, Callable

from autoresearch.errors import CollectError
from autoresearch.model import Hypothesis, build, check_sweep, combinations, description_problem, parametrize
from autoresearch.patches import PatchKind, builtin_kinds

#: While a hypothesis file is imported to be collected: its module's name -> what @hypothesis marked
#: there, as (the object, the line of its @hypothesis), so that one no longer in reach is told.
MARKED: dict[str, list[tuple[Any, int]]] = {}


class Patch:
    """What a Python hypothesis function receives: it records the changes to make, one method per
    patch kind, each taking what the kind's TOML table holds:

    - ``patch.set(DEPTH=6, LR=0.02)``: assign module-level constants of the editable file;
    - ``patch.replace(old, new)``: replace exact text that must occur exactly once;
    - ``patch.diff(text)``: apply a unified diff to the editable files (once);
    - ``patch.keys({"model.temperature": 0.4})``: assign keys of a YAML, JSON or TOML editable file;
    - and ``patch.<kind>(...)`` for any kind a plugin adds (``autoresearch_patch_kinds``).
    """

    __slots__ = ("_kinds", "_calls")

    def __init__(self, kinds: tuple[PatchKind, ...] | None = None) -> None:
        object.__setattr__(self, "_kinds", {k.name: k for k in kinds or builtin_kinds()})
        object.__setattr__(self, "_calls", {})

    def __getattr__(self, name: str) -> Callable[..., None]:
        kinds = object.__getattribute__(self, "_kinds")
        if name.startswith("_") or name not in kinds:
            raise AttributeError(f"patch.{name}: no such patch kind (patch.{', patch.'.join(kinds)})")
        kind = kinds[name]

        def record(*args: Any, **kwargs: Any) -> None:
            kind.from_calls([(args, kwargs)])  # a wrong call fails here, in the function that made it
            self._calls.setdefault(name, []).append((args, kwargs))

        record.__name__ = record.__qualname__ = name
        record.__doc__ = kind.fields.get(name)
        return record

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"patch.{name} cannot be assigned: the patch keeps its own records "
                             "(call patch.set, patch.replace and patch.diff)")

    def raw(self) -> dict[str, Any]:
        """The calls recorded, as the TOML keys of the kinds they stand for (``{"set": {...}}``)."""
        calls = object.__getattribute__(self, "_calls")
        kinds = object.__getattribute__(self, "_kinds")
        return {name: kinds[name].from_calls(made) for name, made in calls.items()}


def hypothesis(description: str | Callable | None = None, *, name: str | None = None,
               expect: dict[str, str] | None = None, baseline: str = "best",
               sweep: dict[str, list] | None = None, tags: tuple[str, ...] | list[str] = (),
               file: str | None = None, allow_type_change: bool = False, allow_new: bool = False) -> Any:
    """Mark a function as a hypothesis; its docstring is the hypothesis text.

    The function receives a :class:`Patch` (and, for a sweep, each swept name as a keyword
    argument when it accepts one) and records its changes on it::

        @hypothesis(description="SiLU in the MLP", expect={"val_bpb": "< baseline"})
        def silu(patch):
            '''SiLU keeps small negative activations; expect a slightly lower loss.'''
            patch.set(ACTIVATION="silu")
    """
    if callable(description):  # used bare: @hypothesis
        return hypothesis()(description)

    def mark(fn: Callable) -> Callable:
        frame = sys._getframe(1)  # where it is applied: the line to name when `fn` has no code of its own
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back  # type: ignore[assignment]
        line = frame.f_lineno if frame is not None else 1
        module = frame.f_globals.get("__name__") if frame is not None else None
        if module in MARKED:
            MARKED[module].append((fn, line))
        fn.__autoresearch_hypothesis__ = dict(  # type: ignore[attr-defined]
            line=line,
            description=description, name=name or getattr(fn, "__name__", None), expect=dict(expect or {}),
            baseline=baseline, sweep=sweep if sweep is not None else {}, tags=list(tags) if isinstance(tags, (list, tuple))
            else tags, file=file,
            allow_type_change=allow_type_change, allow_new=allow_new)
        return fn

    return mark


def hidden(marked: list[tuple[Any, int]], found: list[Any], namespace: dict[str, Any]) -> tuple[int, str] | None:
    """The first object @hypothesis marked (of `marked`) that collection cannot reach: neither one of
    the module's marked objects (`found`) nor wrapped by one (``__wrapped__``, as functools.wraps
    sets). A decorator above @hypothesis that returns something else (``@staticmethod``, a cache, a
    registry returning None) or an @hypothesis inside a class hides it: (its line, the error)."""
    reach: set[int] = set()
    for obj in found:
        while obj is not None and id(obj) not in reach:
            reach.add(id(obj))
            try:
                obj = getattr(obj, "__wrapped__", None)
            except Exception:  # an object whose attributes raise: it wraps nothing collection can see
                obj = None
    for fn, line in sorted(marked, key=lambda m: m[1]):
        if id(fn) in reach:
            continue
        name = getattr(fn, "__name__", None)
        name = name if isinstance(name, str) else "?"
        held = namespace.get(name, hidden) if name.isidentifier() else hidden
        if held is hidden:
            return line, (f"@hypothesis {name} is hidden: it is not at the module's top level (inside a class or a "
                          "function), where collection finds hypotheses; put it on a def at the module's top level")
        what = "None" if held is None else f"a {type(held).__name__}"
        return line, (f"@hypothesis {name} is hidden: the module holds {what} under that name, not the function "
                      "@hypothesis marked (a decorator above @hypothesis returned something else); put @hypothesis "
                      "outermost")
    return None


def safe_text(exc: BaseException) -> str:
    """An exception's message as one printable line of at most 300 characters, whatever it holds."""
    from autoresearch.reports import printable

    try:
        text = str(exc)
    except Exception:  # a __str__ that raises
        text = "(its message could not be read)"
    return printable(text.replace("\n", " "))[:300]


def line_of(fn: Any) -> int:
    """The line that names a decorated object: its code's first line (the first decorator's) for a
    function, the line where @hypothesis was applied for anything else (a class, a staticmethod)."""
    code = getattr(fn, "__code__", None)
    if code is not None and isinstance(getattr(code, "co_firstlineno", None), int):
        return code.co_firstlineno
    meta = getattr(fn, "__autoresearch_hypothesis__", None)
    line = meta.get("line") if isinstance(meta, dict) else None
    return line if isinstance(line, int) and line > 0 else 1


def from_function(fn: Callable, path: str, max_sweep: int | None = None,
                  kinds: tuple[PatchKind, ...] | None = None) -> list[Hypothesis]:
    """Turn a decorated function into hypotheses, calling it once per sweep combination; whatever
    the function or its decorator's arguments do wrong is a :class:`CollectError` at its line."""
    line = line_of(fn)
    try:
        return _from_function(fn, path, line, max_sweep, kinds or builtin_kinds())
    except CollectError:
        raise
    except (Exception, SystemExit, GeneratorExit) as exc:  # the user's code, or arguments of the wrong kind
        name = getattr(fn, "__name__", "the function")
        raise CollectError(path, line, f"@hypothesis {name}: {type(exc).__name__}: {safe_text(exc)} (decorate a "
                                       "plain function def name(patch): with data arguments)") from None


def _from_function(fn: Callable, path: str, line: int, max_sweep: int | None,
                   kinds: tuple[PatchKind, ...]) -> list[Hypothesis]:
    import inspect

    meta = dict(fn.__autoresearch_hypothesis__)  # type: ignore[attr-defined]
    meta.pop("line", None)
    what = ("a class" if inspect.isclass(fn) else "an async function" if inspect.iscoroutinefunction(fn)
            else "a generator" if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
            else None if inspect.isfunction(fn) else type(fn).__name__)
    if what:
        raise CollectError(path, line, f"@hypothesis decorates {what} (decorate a plain function "
                                       "def name(patch): that calls patch.set, patch.replace or patch.diff)")
    sweep = meta.pop("sweep")
    check_sweep(sweep, lambda msg, key=None: CollectError(path, line, msg), max_sweep,
                lambda k: any(kind.sweeps and kind.claims(k, {}) for kind in kinds))
    doc = inspect.getdoc(fn) or ""
    raw = {k: v for k, v in meta.items() if v is not None}
    raw["hypothesis"] = doc
    if raw.get("description") is None:
        raw["description"] = doc.splitlines()[0] if doc else None
    accepted = inspect.signature(fn).parameters
    out = []
    for params in combinations(sweep) if sweep else [()]:
        patch = Patch(kinds)
        try:
            fn(patch, **{k: v for k, v in params if k in accepted})
        except (Exception, SystemExit, GeneratorExit) as exc:  # the user's code: report where, not a traceback
            raise CollectError(path, line, f"{fn.__name__}() raised {type(exc).__name__}: {safe_text(exc)}") from None
        try:
            one = {**raw, **patch.raw()}
        except (TypeError, ValueError) as exc:  # calls each right alone, wrong together (two diffs)
            raise CollectError(path, line, safe_text(exc)) from None
        for kind in kinds:
            if kind.sweeps and params:
                one[kind.name] = kind.sweep(one.get(kind.name), params)
        (h,) = build(one, path, line, fn.__name__, max_sweep=max_sweep, kinds=kinds)
        if sweep:
            h = parametrize(h, params)
            problem = description_problem(h.description)
            if problem:
                raise CollectError(path, line, f"{problem}, once the sweep's values are filled in ({h.name})")
        out.append(h)
    return out
