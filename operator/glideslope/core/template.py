"""A notification's own template (`spec.notifications[].webhook.template`): Jinja2 in a
sandbox, bounded in work and size. Pure: no I/O, no clock.

A template is a tenant's code that the operator runs, so the sandbox (no attribute starting
with `_`, no mutation of lists and dicts, no `str.format`) is not enough: Jinja's own sandbox
bounds `range` but not two nested loops, a string multiplied by a billion, or a value doubled
forty times by `{% set %}`. Every render therefore carries a budget, counted in work rather
than seconds so that the same template always passes or fails the same way:

- `STEPS_MAX` loop iterations, calls, filters, operators and output chunks, together;
- no single value (string, list, number) larger than `VALUE_MAX` characters, checked *before*
  the operation that would make it where its size can be known first (`*`, `**`, `+`,
  `replace`, `indent`, `join`...), after it otherwise;
- `PRODUCED_MAX` characters made by all operations together, garbage included;
- integer widths and counts (`range`, `center`, `indent`, `truncate`...) at most `ARG_MAX`;
- `RENDERED_MAX` characters of output, cut off while it streams.

Literal lists, `~` joins and `{% set %}` blocks are wrapped in checks when the template is
compiled (the AST is rewritten), so nothing a template can write escapes the count. A template
that exceeds a bound fails with `TemplateError`, naming the bound; so does one that does not
compile (`compile_template`, which `core.spec_validation` reports as `InvalidSpec`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from glideslope.api.spec import NOTIFICATION_TEMPLATE_MAX_LENGTH

TEMPLATE_MAX_LENGTH = NOTIFICATION_TEMPLATE_MAX_LENGTH
"""Characters of a template (the CRD's maxLength)."""
RENDERED_MAX = 32768
"""Characters of a rendered body."""
VALUE_MAX = 65536
"""Characters one value may stand for (a string's length, a list's items and their sizes)."""
STEPS_MAX = 50_000
"""Loop iterations, calls, filters, operators and output chunks of one render."""
PRODUCED_MAX = 4 * 1024 * 1024
"""Characters all the values one render makes may stand for, together."""
ARG_MAX = 10_000
"""The largest width or count a template may pass (`range`, `center`, `indent`...)."""
INT_BITS_MAX = 4096
"""The largest integer a template may compute, in bits (`2 ** 10 ** 9` would take minutes)."""

_MESSAGE_MAX = 300


class TemplateError(Exception):
    """A template that does not compile, or a render that was refused; the message says why."""


# --------------------------------------------------------------------------------------------
# The budget of the render under way


class _Budget:
    __slots__ = ("produced", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.produced = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > STEPS_MAX:
            raise TemplateError(f"the template took more than {STEPS_MAX} steps (loop iterations, calls, "
                                "filters); it is refused rather than allowed to stall the operator")

    def charge(self, size: int) -> None:
        if size > VALUE_MAX:
            raise TemplateError(f"the template made a value larger than {VALUE_MAX} characters")
        self.produced += size
        if self.produced > PRODUCED_MAX:
            raise TemplateError(f"the template made more than {PRODUCED_MAX} characters of values in all")

    def made(self, value: Any) -> Any:
        self.charge(_size(value))
        return value


# Per render, not per environment: the environment and its compiled templates are shared by
# every thread that renders.
_BUDGET: ContextVar[_Budget | None] = ContextVar("glideslope_template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # also stops Jinja from folding a guarded expression at compile time
        raise TemplateError("a template is only evaluated by render_template")
    return budget


def _size(value: Any, limit: int = VALUE_MAX) -> int:
    """About how many characters `value` prints as; counting stops once past `limit`.
    Iterative: a deeply nested value must not overflow the stack here."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1  # decimal digits, roughly
        elif isinstance(item, range):
            total += len(item)
        elif isinstance(item, Mapping):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        else:
            total += 1
    return total


def _too_large(what: str, size: int) -> None:
    if size > VALUE_MAX:
        raise TemplateError(f"{what} would make a value larger than {VALUE_MAX} characters")


def _count(name: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > ARG_MAX:
        raise TemplateError(f"{name}: {value} is over the template limit of {ARG_MAX}")


# printf-style conversions: `%0999999999d` would allocate a gigabyte in one call.
_PRINTF = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    for match in _PRINTF.finditer(fmt):
        for part in match.groups():
            if part == "*" or (part is not None and int(part) > 1000):
                raise TemplateError(f"format {match.group(0)!r}: widths over 1000 are refused")


# --------------------------------------------------------------------------------------------
# Guards around what Jinja runs


def _check_binop(operator: str, left: Any, right: Any) -> None:
    numbers = (int, float)
    if operator == "**" and isinstance(left, numbers) and isinstance(right, numbers):
        if isinstance(left, int) and isinstance(right, int) and right > 0 \
                and max(abs(left).bit_length(), 1) * right > INT_BITS_MAX:
            raise TemplateError(f"{left} ** {right} is larger than {INT_BITS_MAX} bits")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > INT_BITS_MAX:
                raise TemplateError(f"a product larger than {INT_BITS_MAX} bits is refused")
            return
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and isinstance(seq, str | list | tuple):
            _too_large("'*'", _size(seq) * max(times, 0))
    elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _too_large("'+'", _size(left) + _size(right))
    elif operator == "%" and isinstance(left, str):
        _check_printf(left)


def _check_str_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a str method call whose result would be too large, before it is made."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return
    for arg in (*args, *kwargs.values()):
        _count(f"str.{name}", arg)
    if name == "replace" and len(args) >= 2 and isinstance(args[1], str):
        count = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else len(owner) + 1
        _too_large("str.replace", len(owner) + count * len(args[1]))
    elif name == "join" and args and isinstance(args[0], Sized):
        _too_large("str.join", _size(args[0]) + len(owner) * len(args[0]))
    elif name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        _too_large("str.expandtabs", len(owner) * max(size, 1))


def _guarded_range(*args: int) -> range:
    for arg in args:
        _count("range", arg)
    return range(*args)


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `{% for %}` iterates through this: one step per item."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _concat(parts: list[Any]) -> str:
    """`a ~ b`: the parts are measured before they are joined."""
    budget = _budget()
    texts = [str(part) for part in parts]
    _too_large("'~'", sum(len(t) for t in texts))
    return str(budget.made("".join(texts)))


def _value(value: Any) -> Any:
    """A literal list or dict, or a `{% set %}` block, measured once made."""
    budget = _budget()
    budget.step()
    return budget.made(value)


# What each filter may be asked to make, checked before it runs.
def _before_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    value, rest = (args[0] if args else None), args[1:]
    for arg in (*rest, *kwargs.values()):
        if name in _COUNTED_FILTERS:
            _count(f"filter {name}", arg)
    if name == "replace" and isinstance(value, str) and len(rest) >= 2:
        new = str(rest[1])
        count = rest[2] if len(rest) > 2 and isinstance(rest[2], int) and rest[2] >= 0 else len(value) + 1
        _too_large("filter replace", len(value) + count * len(new))
    elif name == "indent" and isinstance(value, str):
        width = rest[0] if rest else kwargs.get("width", 4)
        unit = width if isinstance(width, int) else len(str(width))
        _too_large("filter indent", len(value) + max(unit, 0) * (value.count("\n") + 1))
    elif name == "wordwrap" and isinstance(value, str):
        wrap = kwargs.get("wrapstring") or (rest[2] if len(rest) > 2 else None) or "\n"
        _too_large("filter wordwrap", len(value) * (1 + len(str(wrap))))
    elif name == "join" and isinstance(value, Sized):
        sep = str(rest[0] if rest else kwargs.get("d", ""))
        _too_large("filter join", _size(value) + len(sep) * len(value))
    elif name == "format" and isinstance(value, str):
        _check_printf(value)


_COUNTED_FILTERS = frozenset({"batch", "center", "indent", "round", "slice", "truncate", "wordwrap"})

# The filters a template may use: text and data shaping. Not the HTML ones (`urlize`,
# `xmlattr`, `striptags`), not `random`, not `pprint`.
_FILTERS = (
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "format", "groupby", "indent", "int", "items", "join", "last",
    "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round",
    "select", "selectattr", "slice", "sort", "string", "sum", "title", "tojson", "trim", "truncate",
    "unique", "upper", "urlencode", "wordcount", "wordwrap",
)


def _guard_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    # A filter that takes the context or environment first gets it first here too (the
    # marker is copied by `wraps`).
    passed = 1 if hasattr(fn, "jinja_pass_arg") else 0

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if name == "join" and len(args) > passed and not isinstance(args[passed], Sized):
            # A generator (`map`) is counted item by item, then measured like a list.
            args = (*args[:passed], list(_loop(args[passed])), *args[passed + 1:])
        _before_filter(name, args[passed:], kwargs)
        result = fn(*args, **kwargs)
        if isinstance(result, Iterator):
            return _loop(result)  # lazily made: each item counted as it is taken
        return budget.made(result)

    return guarded


def _guard_test(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _budget().step()
        return fn(*args, **kwargs)

    return guarded


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every operator and call counted and measured."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format takes its widths from the format string (`{:>999999999}`), past any
        # argument check; `~` and the `format` filter do the same, measured.
        if super().wrap_str_format(value) is None:
            return None

        def refused(*args: Any, **kwargs: Any) -> str:
            raise TemplateError("str.format is not available in a template: use '~' or the format filter")

        return refused

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_binop(operator, left, right)
        return budget.made(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_str_method(__obj, args, {k: v for k, v in kwargs.items() if not k.startswith("_")})
        return budget.made(super().call(__context, __obj, *args, **kwargs))


class _Guard(NodeTransformer):
    """Rewrites a parsed template so that what the guards above cannot see passes a check."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_glideslope_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "_glideslope_concat")

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        self.generic_visit(node)
        # The block's own filter, if any, runs first and sees the captured text.
        node.filter = nodes.Filter(node.filter, "_glideslope_value", [], [], None, None, lineno=node.lineno)
        return node

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":  # a target (`{% for a, b in ... %}`) is no value
            return node
        return _filter(node, "_glideslope_value")

    visit_List = _literal
    visit_Tuple = _literal
    visit_Dict = _literal


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _environment() -> _Sandbox:
    # Not optimized: Jinja's optimizer evaluates constant expressions while compiling, outside
    # any budget. StrictUndefined: a misspelt field fails, naming it, rather than sending "".
    env = _Sandbox(autoescape=False, optimized=False, undefined=jinja2.StrictUndefined,
                   keep_trailing_newline=True)
    builtin = env.filters
    env.filters = {name: _guard_filter(name, builtin[name]) for name in _FILTERS}
    env.filters.update({"_glideslope_loop": _loop, "_glideslope_concat": _concat, "_glideslope_value": _value})
    env.tests = {name: _guard_test(cast(Callable[..., Any], fn)) for name, fn in env.tests.items()}
    # No `namespace()`: the event's own `namespace` field takes that name, and without it no
    # value outlives a loop's iteration.
    env.globals = {"range": _guarded_range, "dict": dict}
    return env


_ENV = _environment()


# --------------------------------------------------------------------------------------------
# The interface


@dataclass(frozen=True)
class CompiledTemplate:
    """A template that compiled; render it with `render_template`."""

    source: str
    template: jinja2.Template


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> CompiledTemplate | str:
    # Errors are cached too: a spec is validated on every tick.
    if len(source) > TEMPLATE_MAX_LENGTH:
        return f"longer than {TEMPLATE_MAX_LENGTH} characters"
    try:
        tree = _ENV.parse(source)
        return CompiledTemplate(source, _ENV.from_string(_Guard().visit(tree)))
    except jinja2.TemplateSyntaxError as exc:
        return _cut(f"line {exc.lineno}: {exc.message}")
    except RecursionError:
        return "nested too deeply"
    except Exception as exc:  # whatever else Jinja raises while compiling, said, not raised
        return _cut(f"does not compile: {type(exc).__name__}: {exc}")


def compile_template(source: str) -> CompiledTemplate:
    """The template, compiled; TemplateError says why it does not compile."""
    compiled = _compile(source)
    if isinstance(compiled, str):
        raise TemplateError(compiled)
    return compiled


def render_template(compiled: CompiledTemplate, variables: Mapping[str, Any]) -> str:
    """The template's output over `variables`, within the bounds of the module docstring;
    TemplateError (never anything else) when it is refused or fails."""
    budget = _Budget()
    token = _BUDGET.set(budget)
    try:
        out: list[str] = []
        length = 0
        for chunk in compiled.template.generate(**variables):
            budget.step()
            length += len(chunk)
            if length > RENDERED_MAX:
                raise TemplateError(f"the rendered body is longer than {RENDERED_MAX} characters")
            out.append(chunk)
        return "".join(out)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise TemplateError(_cut(f"refused by the sandbox: {exc}")) from None
    except RecursionError:
        raise TemplateError("recursion too deep (a macro or loop calling itself?)") from None
    except MemoryError:
        raise TemplateError("out of memory") from None
    except Exception as exc:  # an undefined name, a type error...: the template's fault, said
        raise TemplateError(_cut(f"{type(exc).__name__}: {exc}")) from None
    finally:
        _BUDGET.reset(token)


def _cut(text: str) -> str:
    return text if len(text) <= _MESSAGE_MAX else text[:_MESSAGE_MAX - 1] + "\u2026"
