"""Trigger and metric-gate conditions: CEL over `result`, compiled once, never `eval`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError


class ConditionError(ValueError):
    """A condition that does not compile, names unknown variables, or is not a boolean."""


# Trial values: a condition must give a boolean for ordinary and edge-case results, so a
# typo such as `reslt > 1` or `result + 1` is found before a rollout starts, not mid-analysis.
_TRIAL_RESULTS = (0.0, 1.0, 0.5, 1e9)


@dataclass(frozen=True)
class Condition:
    """A compiled CEL expression over the double `result`."""

    source: str
    _program: Any

    def holds(self, result: float) -> bool:
        if math.isnan(result):
            # NaN compares false with everything: callers treat it as no data, never a pass.
            raise ConditionError("result is NaN")
        try:
            value = self._program.evaluate({"result": celtypes.DoubleType(result)})
        except CELEvalError as exc:
            raise ConditionError(f"{self.source!r}: {_first_line(exc)}") from exc
        if not isinstance(value, celtypes.BoolType):
            raise ConditionError(f"{self.source!r} gives {type(value).__name__}, not a boolean")
        return bool(value)


_ENV = celpy.Environment(annotations={"result": celtypes.DoubleType})


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> Condition:
    """Compile `source` and try it on sample results; raise ConditionError with the reason.

    Cached: compiling takes milliseconds, and every tick validates the spec's conditions and
    judges measurements with them (a refused source is not cached, and is compiled again)."""
    try:
        ast = _ENV.compile(source)
        program = _ENV.program(ast)
    except CELParseError as exc:
        raise ConditionError(f"{source!r} is not valid CEL: {_first_line(exc)}") from exc
    condition = Condition(source, program)
    for trial in _TRIAL_RESULTS:
        condition.holds(trial)
    return condition


def _first_line(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc).strip()
    # cel-python appends its whole activation to some messages; the user needs the first clause.
    text = text.split(" (in activation", 1)[0]
    return text.splitlines()[0] if text else type(exc).__name__
