"""Trigger and metric-gate conditions: CEL over `result`, compiled once, never `eval`.

A condition is written by a tenant and evaluated inside the shared operator, and cel-python has
no cost limit of its own: `size([0,...,0].map(a, [0,...,0].map(b, ...))) > 0` five deep is 180
characters and took ~45 s to compile and try. So a condition's cost is bounded before any of it
is evaluated, by two checks linear in its length:

- Its text, before the lexer sees it: at most `MAX_SOURCE_CHARS`, and no backslash or carriage
  return. cel-python's lexer matches string literals with backtracking regexes in which an escape
  or a carriage return matches more than one way, so an unterminated literal takes exponential
  time: 32 backslashes 1.2 s, `'''` and 20 CRLFs minutes. A condition over a number needs neither.
- Its parse tree, walked without recursion: only what a condition over one double needs is
  allowed (`result`, literals, arithmetic, comparisons, `in`, `&&`, `||`, `!`, `?:`, parentheses,
  small list and map literals, and the conversions in `FUNCTIONS`), within fixed bounds on
  nodes, nesting and literal sizes. That refuses the comprehension macros (their cost is the
  size of their list, and nested ones multiply), `matches` (a regex, whose cost depends on the
  pattern; cel-python before 0.5 could run Python's backtracking `re`), every other function and
  method, field selection, indexing and message construction. What remains has no loop: it
  costs one evaluation step per node on values no larger than its literals together, and the
  nesting bound keeps cel-python's recursive evaluator far from the recursion limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Token, Tree


class ConditionError(ValueError):
    """A condition that does not compile, names unknown variables, is not a boolean, or whose cost
    is not bounded."""


# Trial values: a condition must give a boolean for ordinary and edge-case results, so a
# typo such as `reslt > 1` or `result + 1` is found before a rollout starts, not mid-analysis.
_TRIAL_RESULTS = (0.0, 1.0, 0.5, 1e9)

# The bounds of a condition. Ordinary conditions are far inside them: `result >= 0.5 && result < 2.0`
# has 7 nodes nested 3 deep.
MAX_SOURCE_CHARS = 1024
"""Characters of the source, as the CRD's maxLength."""
MAX_NODES = 100
"""Nodes as written: operators, operands, calls, literals and parentheses (the grammar's
pass-through rules are not counted)."""
MAX_DEPTH = 16
"""Of those, how many may be inside one another; each operator of a chain `a || b || c` is a
level (the chain is evaluated recursively). cel-python evaluates recursively: 16 levels of
parentheses or lists take ~780 frames, inside Python's default limit of 1,000 even without
the 2,500 cel-python sets."""
MAX_ELEMENTS = 8
"""Elements of a list literal, entries of a map literal (enough for `result in [...]`)."""
MAX_STRING_CHARS = 64
"""Characters of a string or bytes literal, quotes and prefix included."""

FUNCTIONS = frozenset({"double", "int", "uint"})
"""The only functions a condition may call: conversions, constant cost on bounded literals."""
MACROS = frozenset({"map", "filter", "all", "exists", "exists_one"})
"""The comprehension macros: named in the refusal, as the rewrite they need is the largest."""

# The precedence chain of cel-python's grammar (cel.lark): a node with one child only passes it
# on; with more it is an operator (`a || b`, `a < b`, `!a`, `a ? b : c`) and counts.
_CHAIN = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition",
                    "multiplication", "unary", "member", "primary"})
# Operator markers and argument lists: part of the node above them, never counted.
_PARTS = frozenset({"relation_lt", "relation_le", "relation_gt", "relation_ge", "relation_eq",
                    "relation_ne", "relation_in", "addition_add", "addition_sub",
                    "multiplication_mul", "multiplication_div", "multiplication_mod",
                    "unary_not", "unary_neg", "exprlist", "mapinits", "fieldinits"})
# Never needed by a condition over a number; refused whatever their arguments.
_REFUSED = {
    "member_dot": "field selection (a condition sees only the number `result`)",
    "member_index": "indexing with [...]",
    "member_object": "message construction",
}
_CALLS = frozenset({"ident_arg", "dot_ident_arg", "member_dot_arg"})
# Every other rule of the grammar: one node each.
_COUNTED = frozenset({"literal", "ident", "dot_ident", "paren_expr", "list_lit", "map_lit", *_CALLS, *_REFUSED})
_STRING_TOKENS = frozenset({"STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"})

# Problems are reported most important first: what to rewrite before what to shorten.
_MACRO, _REGEX, _CALL, _CONSTRUCT, _LITERAL, _SIZE = range(6)
_ALLOWED = ("a condition may use `result`, number/bool/short string literals, arithmetic, comparisons, "
            f"in, &&, ||, !, ?:, lists or maps of up to {MAX_ELEMENTS} elements, and " +
            ", ".join(f"{f}()" for f in sorted(FUNCTIONS)))


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
            raise ConditionError(f"{_shown(self.source)}: {_first_line(exc)}") from exc
        if not isinstance(value, celtypes.BoolType):
            raise ConditionError(f"{_shown(self.source)} gives {type(value).__name__}, not a boolean")
        return bool(value)


_ENV = celpy.Environment(annotations={"result": celtypes.DoubleType})


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> Condition:
    """Check `source`'s cost, compile it and try it on sample results; raise ConditionError with
    the reason.

    Cached: compiling takes milliseconds, and every tick validates the spec's conditions and
    judges measurements with them (a refused source is not cached, and is checked again: the
    checks before evaluation are linear in its length)."""
    _check_text(source)
    try:
        ast = _ENV.compile(source)
    except CELParseError as exc:
        raise ConditionError(f"{_shown(source)} is not valid CEL: {_first_line(exc)}") from exc
    except Exception as exc:  # RecursionError or a lark error cel-python does not wrap
        raise ConditionError(f"{_shown(source)} could not be parsed ({type(exc).__name__})") from exc
    check_cost(ast, source)
    try:
        program = _ENV.program(ast)
        condition = Condition(source, program)
        for trial in _TRIAL_RESULTS:
            condition.holds(trial)
    except ConditionError:
        raise
    except Exception as exc:  # not seen since the checks: never let one crash the operator
        raise ConditionError(f"{_shown(source)} could not be evaluated: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from exc
    return condition


def _check_text(source: str) -> None:
    """What must be refused before the lexer sees the text."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ConditionError(f"{_shown(source)} is refused: {len(source)} characters, at most {MAX_SOURCE_CHARS}")
    if "\\" in source:
        raise ConditionError(f"{_shown(source)} is refused: it contains a backslash (escape sequences are not "
                             "supported: the CEL lexer can take exponential time on them)")
    if "\r" in source:
        raise ConditionError(f"{_shown(source)} is refused: it contains a carriage return (use plain newlines: "
                             "the CEL lexer can take exponential time on them)")


def check_cost(ast: Tree[Token], source: str) -> None:
    """Raise ConditionError if the parse tree `ast` of `source` has anything whose cost is not
    bounded, or exceeds a bound; nothing is evaluated. Iterative: the tree's depth is the user's."""
    problems: dict[str, int] = {}  # message -> priority, in the order found
    nodes = 0
    stack: list[tuple[Tree[Token], int]] = [(ast, 0)]
    while stack:
        node, depth = stack.pop()
        rule = str(node.data)
        if rule in _PARTS or (rule in _CHAIN and len(node.children) == 1):
            counted = False
        elif rule in _CHAIN or rule in _COUNTED:
            counted = True
        else:  # a rule of a newer cel-python grammar: refused until it is classified here
            problems.setdefault(f"the construct {rule!r}", _CONSTRUCT)
            continue
        if counted:
            nodes += 1
            depth += 1
            if nodes > MAX_NODES:
                problems.setdefault(f"more than {MAX_NODES} operators and operands", _SIZE)
                break
            if depth > MAX_DEPTH:
                problems.setdefault(f"nesting deeper than {MAX_DEPTH} levels (parentheses, calls, lists and "
                                    "operators inside one another; each operator of a chain such as "
                                    "a || b || c is a level)", _SIZE)
                break
            problem = _problem(node, rule)
            if problem is not None:
                problems.setdefault(*problem)
        # Reversed, so that problems are found in the order of the source.
        stack.extend((child, depth) for child in reversed(node.children) if isinstance(child, Tree))
    if problems:
        ordered = sorted(problems, key=problems.__getitem__)  # stable: ties keep source order
        raise ConditionError(f"{_shown(source)} is refused: {'; '.join(ordered)} ({_ALLOWED})")


def _problem(node: Tree[Token], rule: str) -> tuple[str, int] | None:
    """What is wrong with one counted node by itself, if anything, and its priority."""
    children = node.children
    if rule in _REFUSED:
        return _REFUSED[rule], _CONSTRUCT
    if rule in _CALLS:
        name = str(children[1] if rule == "member_dot_arg" else children[0])
        shown = f".{name}()" if rule == "member_dot_arg" else f"{name}()"
        if name in MACROS:
            return (f"the comprehension macro {shown} (its cost is the size of its list, and nested "
                    "ones multiply)"), _MACRO
        if name == "matches":
            return (f"{shown} (a regular expression: its cost depends on the pattern, and cel-python "
                    "without RE2 backtracks exponentially)"), _REGEX
        if rule == "member_dot_arg":
            return f"the method {shown}", _CALL
        if name not in FUNCTIONS:
            return f"the function {shown}", _CALL
        return None
    if rule == "literal":
        token = children[0]
        if isinstance(token, Token) and token.type in _STRING_TOKENS and len(token) > MAX_STRING_CHARS:
            return f"a string literal of {len(token)} characters (at most {MAX_STRING_CHARS})", _LITERAL
        return None
    if rule in ("list_lit", "map_lit"):
        items = children[0].children if children and isinstance(children[0], Tree) else []
        count = len(items) if rule == "list_lit" else len(items) // 2
        if count > MAX_ELEMENTS:
            kind = "list literal of" if rule == "list_lit" else "map literal of"
            unit = "elements" if rule == "list_lit" else "entries"
            return f"a {kind} {count} {unit} (at most {MAX_ELEMENTS})", _LITERAL
    return None


def _shown(source: str) -> str:
    """The source as messages quote it: shortened, as the status message has 1,024 characters."""
    return repr(source) if len(source) <= 60 else repr(source[:57]) + "..."


def _first_line(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc).strip()
    # cel-python appends its whole activation to some messages; the user needs the first clause.
    text = text.split(" (in activation", 1)[0]
    return text.splitlines()[0] if text else type(exc).__name__
