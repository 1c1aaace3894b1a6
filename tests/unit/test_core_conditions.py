"""The cost bound of conditions: what a condition over one double may use, the bounds on its size,
and that everything else is refused before any of it is evaluated (the text, before it is lexed).

No test here measures time: what a refused condition would cost is shown by what it is refused
for, and the cost of accepted ones by the number of Python calls one evaluation makes.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import parse_spec
from glideslope.core import conditions
from glideslope.core.conditions import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_NODES,
    MAX_SOURCE_CHARS,
    MAX_STRING_CHARS,
    Condition,
    ConditionError,
    compile_condition,
)
from glideslope.core.spec_validation import validate_spec
from tests.unit.test_core_spec_validation import ZONES, spec, trigger

pytestmark = pytest.mark.unit


def nested_map(levels: int, width: int = 10) -> str:
    """The issue's condition: `levels` nested maps over `width` zeros, width**levels steps."""
    zeros = "[" + ",".join(["0"] * width) + "]"
    inner = "0"
    for var in reversed("abcdefgh"[:levels]):
        inner = f"{zeros}.map({var}, {inner})"
    return f"size({inner}) > 0 || result > 0"


ROW = "[1,1,1,1,1,1,1,1]"
# Nodes: 100, the most allowed; one more literal makes 101.
HUNDRED_NODES = f"[{','.join([ROW] * 8)}] != [{ROW},{ROW},1,1,1] && result >= 0.0"
ONE_HUNDRED_ONE_NODES = HUNDRED_NODES.replace(",1,1,1]", ",1,1,1,1]")


def parens(n: int) -> str:
    return "(" * n + "result" + ")" * n + " > 0.0"


def ors(n: int) -> str:
    return " || ".join(["result == 1.0"] * n)


# (source, result, whether it holds)
ACCEPTED: list[tuple[str, float, bool]] = [
    ("result > 0.001", 0.01, True),
    ("result >= 0.5 && result < 2.0", 3.0, False),
    ("result in [0.0, 0.5, 1.0]", 0.5, True),
    ("result in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]", 9.0, False),  # MAX_ELEMENTS elements
    ("result in {0.5: 'half', 1.0: 'one'}", 0.5, True),
    ("double(int(result)) == 2.0", 2.7, True),
    ("uint(result) >= 1u && int(result) < 2", 1.5, True),
    ("result > 0.0 ? result < 1.0 : false", 0.5, True),
    ("!(result > 1.0) && -result < 0.0", 0.5, True),
    ("(result * 100.0 - 50.0) / 2.0 < 1.0", 0.5, True),
    ("result > 0.5 // no data is never a pass\n|| result == 0.0", 0.0, True),
    ("'" + "a" * (MAX_STRING_CHARS - 2) + "' != '' && b'ok' == b'ok' && result >= 0.0", 1.0, True),
    (parens(MAX_DEPTH - 2), 1.0, True),  # the comparison, 14 parentheses and `result`: 16 deep
    (ors(MAX_DEPTH - 1), 1.0, True),  # 15 clauses: 14 `||` nested, the comparison and its operand
    (HUNDRED_NODES, 1.0, True),
]


@pytest.mark.parametrize(("source", "result", "holds"), ACCEPTED, ids=[s[:40] for s, _, _ in ACCEPTED])
def test_ordinary_conditions_are_accepted(source: str, result: float, holds: bool) -> None:
    assert compile_condition(source).holds(result) is holds


MACRO = "the comprehension macro"
TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels"
TOO_LONG = f"characters, at most {MAX_SOURCE_CHARS}"

# (id, source, what the message must contain, "text" if refused before it is lexed, else "tree")
REFUSED: list[tuple[str, str, str, str]] = [
    ("issue-nested-map-5-deep", nested_map(5), f"{MACRO} .map() (its cost is the size of its list", "tree"),
    ("nested-map-1-deep", "[1, 2].map(x, x * 2) == [2, 4] && result > 0.0", f"{MACRO} .map()", "tree"),
    ("filter", "[1, 2].filter(x, x > 1) == [] && result > 0.0", f"{MACRO} .filter()", "tree"),
    ("all", "[1, 2].all(x, x > 0)", f"{MACRO} .all()", "tree"),
    ("exists", "[result].exists(x, x > 0.0)", f"{MACRO} .exists()", "tree"),
    ("exists_one", "[result].exists_one(x, x > 0.0)", f"{MACRO} .exists_one()", "tree"),
    ("matches-backtracking", "'" + "a" * 30 + "!'.matches('^(a+)+$') || result > 0.0",
     ".matches() (a regular expression", "tree"),
    ("matches-function", "matches('aaaa', '(a|aa)+$') || result > 0.0", "matches() (a regular expression", "tree"),
    ("size", "size([1, 2]) > 1", "the function size()", "tree"),
    ("method", "'abc'.startsWith('a') || result > 0.0", "the method .startsWith()", "tree"),
    ("string", "string(result) == '1.0'", "the function string()", "tree"),
    ("has", "has(result.x)", "the function has()", "tree"),
    ("timestamp", "timestamp('2030-01-01T00:00:00Z') > timestamp('2020-01-01T00:00:00Z')",
     "the function timestamp()", "tree"),
    ("field-selection", "result.value > 1.0", "field selection", "tree"),
    ("indexing", "[1.0, 2.0][0] < result", "indexing", "tree"),
    ("message", "google.protobuf.DoubleValue{value: 1.0} == result", "message construction", "tree"),
    ("list-9", "result in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]",
     f"a list literal of 9 elements (at most {MAX_ELEMENTS})", "tree"),
    ("map-9", "result in {" + ", ".join(f"{i}.0: 0" for i in range(9)) + "}",
     f"a map literal of 9 entries (at most {MAX_ELEMENTS})", "tree"),
    ("list-500", "[" + ",".join(["0"] * 500) + "] == [] || result > 0.0", "a list literal of 500 elements", "tree"),
    ("list-1000", "[" + ",".join(["0"] * 1000) + "] == []", TOO_LONG, "text"),
    ("string-65", "'" + "a" * (MAX_STRING_CHARS - 1) + "' == ''",
     f"a string literal of {MAX_STRING_CHARS + 1} characters (at most {MAX_STRING_CHARS})", "tree"),
    ("string-1000", "'" + "a" * 1000 + "' == ''", "a string literal of 1002 characters", "tree"),
    ("bytes-100", "b'" + "a" * 100 + "' == b''", "a string literal of 103 characters", "tree"),
    ("triple-quoted", "'''" + "a\n" * 40 + "''' == ''", "a string literal of 86 characters", "tree"),
    ("parens-15", parens(MAX_DEPTH - 1), TOO_DEEP, "tree"),
    ("parens-509", parens(509)[:-6], TOO_DEEP, "tree"),  # 1,024 characters
    ("not-1020", "!" * 1020 + "true", TOO_DEEP, "tree"),
    ("negation-1000", "-" * 1000 + "result > 0.0", TOO_DEEP, "tree"),
    ("double-20", "double(" * 20 + "result" + ")" * 20 + " > 0.0", TOO_DEEP, "tree"),
    ("lists-20", "[" * 20 + "]" * 20 + " == []", TOO_DEEP, "tree"),
    ("or-chain-16", ors(MAX_DEPTH), TOO_DEEP, "tree"),
    ("plus-chain-500", "1+" * 500 + "1 > 0", TOO_DEEP, "tree"),
    ("nodes-101", ONE_HUNDRED_ONE_NODES, f"more than {MAX_NODES} operators and operands", "tree"),
    # An unterminated literal with escapes: cel-python's lexer would take minutes.
    ("backslashes", "'" + "\\" * 40, "it contains a backslash", "text"),
    ("escape", "'\\n' == '' || result > 0.0", "it contains a backslash", "text"),
    ("carriage-returns", "'''" + "\r\n" * 20, "it contains a carriage return", "text"),
    ("too-long", "result > 0.0" + " " * MAX_SOURCE_CHARS, TOO_LONG, "text"),
]


@pytest.mark.parametrize(("source", "fragment"), [(s, f) for _, s, f, _ in REFUSED], ids=[i for i, *_ in REFUSED])
def test_costly_conditions_are_refused_saying_why(source: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as err:
        compile_condition(source)
    message = str(err.value)
    assert fragment in message
    # Long sources are quoted shortened: the status message has 1,024 characters for all errors.
    assert len(source) <= 60 or source not in message


@pytest.mark.parametrize(("source", "stage"), [(s, stage) for _, s, _, stage in REFUSED], ids=[i for i, *_ in REFUSED])
def test_refused_before_anything_is_evaluated(monkeypatch: pytest.MonkeyPatch, source: str, stage: str) -> None:
    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("reached")

    monkeypatch.setattr(conditions._ENV, "program", never)
    if stage == "text":
        monkeypatch.setattr(conditions._ENV, "compile", never)
    with pytest.raises(ConditionError):
        compile_condition(source)


def test_the_issue_condition_is_refused_naming_the_field() -> None:
    body = spec(analysis={"triggers": [trigger("errors", failureCondition=nested_map(5))]})
    (error,) = validate_spec(parse_spec(body), ZONES)
    assert str(error).startswith("spec.analysis.triggers[0].failureCondition: 'size([0,0,0,0,0,0,0,0,0,0].map(")
    assert f"{MACRO} .map()" in error.message
    # Everything wrong is said, the rewrite first; and what a condition may use instead.
    assert error.message.index(MACRO) < error.message.index("the function size()")
    assert "a list literal of 10 elements" in error.message
    assert "double(), int(), uint()" in error.message


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"), KeyError("QMARK")])
def test_no_parser_exception_escapes(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    def parse(_: str) -> Any:
        raise exc

    monkeypatch.setattr(conditions._ENV, "compile", parse)
    with pytest.raises(ConditionError, match=f"could not be parsed \\({type(exc).__name__}\\)"):
        compile_condition("result > 0.25 // never compiled before")


def test_accepted_conditions_are_cached_refused_ones_are_not() -> None:
    assert compile_condition("result > 0.125") is compile_condition("result > 0.125")
    before = compile_condition.cache_info().currsize
    for _ in range(2):
        with pytest.raises(ConditionError):
            compile_condition(nested_map(5))
    assert compile_condition.cache_info().currsize == before


# ---------------------------------------------------------------------------------------------
# Properties. Generated conditions mix what is allowed with what is not; whatever the input,
# the outcome is a Condition or a ConditionError, and an accepted condition's evaluation makes a
# number of Python calls linear in its parse tree (no loop survives the check).

CALLS_PER_TREE_NODE = 60  # about 30 at most seen (string concatenation); a nested map is unbounded
TREE_NODES_PER_NODE = 12  # the grammar's pass-through rules above each node written


def _calls(condition: Condition, result: float) -> int:
    count = 0

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        condition.holds(result)
    finally:
        sys.setprofile(None)
    return count


def _tree_nodes(source: str) -> int:
    return sum(1 for _ in conditions._ENV.compile(source).iter_subtrees())


_NUMBER = st.one_of(
    st.just("result"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=0, max_value=2**40).map(lambda n: f"double({n})"),
)


def _numbers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda a: f"-{a}"),
        inner.map(lambda a: f"double({a})"),
        st.lists(inner, max_size=3).map(lambda xs: f"size([{', '.join(xs)}])"),  # refused
        st.tuples(inner, inner).map(lambda t: f"[{t[0]}].map(x, x + {t[1]})[0]"),  # refused
    )


NUMBERS = st.recursive(_NUMBER, _numbers, max_leaves=40)


def _booleans(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        inner.map(lambda a: f"!({a})"),
        inner.map(lambda a: f"({a})"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : ({t[2]})"),
        st.tuples(NUMBERS, inner).map(lambda t: f"[{t[0]}, 2.0].exists(x, {t[1]})"),  # refused
    )


_COMPARISON = st.one_of(
    st.tuples(NUMBERS, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), NUMBERS).map(" ".join),
    st.tuples(NUMBERS, st.lists(NUMBERS, max_size=10)).map(lambda t: f"{t[0]} in [{', '.join(t[1])}]"),
)
BOOLEANS = st.recursive(_COMPARISON, _booleans, max_leaves=30)

_TOKENS = ["result", "(", ")", "[", "]", "{", "}", ",", ":", "!", "-", "+", "*", "/", "<", "==", "&&", "||",
           "?", ".", "map", "size", "double", "x", " in ", "1", "0.5", "1u", "'a'", "'", '"', "'''", "b'", "\\",
           "\r\n", "\n", " ", "//", "true", "null", "e"]


@settings(max_examples=300, deadline=None)
@given(BOOLEANS)
def test_accepted_conditions_cost_linear_in_their_size(source: str) -> None:
    try:
        condition = compile_condition(source)
    except ConditionError:
        return
    assert not any(f"{name}(" in source for name in ("map", "exists", "size"))
    tree_nodes = _tree_nodes(source)
    assert tree_nodes <= TREE_NODES_PER_NODE * MAX_NODES
    for result in (0.0, 0.75, -3.5e300):
        try:
            calls = _calls(condition, result)
        except ConditionError:
            continue  # e.g. an overflow at this value: an error, promptly
        assert calls <= CALLS_PER_TREE_NODE * tree_nodes, (calls, tree_nodes)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=300).map("".join))
def test_any_text_compiles_or_is_refused(source: str) -> None:
    with contextlib.suppress(ConditionError):  # any other exception fails the test
        compile_condition(source)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=MAX_SOURCE_CHARS // 2 - 4), st.sampled_from(["(", "!", "-", "[", "{1:"]))
def test_deep_prefixes_up_to_the_length_limit_are_refused_or_compiled(depth: int, opener: str) -> None:
    closer = {"(": ")", "[": "]", "{1:": "}"}.get(opener, "")
    source = (opener * depth + "result" + closer * depth)[:MAX_SOURCE_CHARS]
    try:
        compile_condition(source)
    except ConditionError as exc:
        assert "could not be parsed" not in str(exc)
