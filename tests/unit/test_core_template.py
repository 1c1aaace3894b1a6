"""A notification's own template (core/template.py): the event's fields rendered, the sandbox
closed, and every hostile template ended by a bound, quickly, with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from glideslope.api import parse_spec
from glideslope.core import template
from glideslope.core.spec_validation import validate_spec
from glideslope.core.template import TemplateError, compile_template, render_template

pytestmark = pytest.mark.unit

VARIABLES: dict[str, Any] = {"release": "checkout", "namespace": "shop", "event": "RolledBack", "version": "2.5.0",
                             "trigger_value": 0.0123, "reason": 'error-rate "high" <b>', "weight": 50,
                             "release_notes": None, "summary": "shop/checkout 2.5.0 rolled back"}


def render(source: str, variables: dict[str, Any] | None = None) -> str:
    return render_template(compile_template(source), VARIABLES if variables is None else variables)


def refusal(source: str) -> str:
    """The reason a template is refused. The bounds count work, not time (so this asserts no
    duration); a template that escaped them would hang, and `pytest-timeout` ends it."""
    with pytest.raises(TemplateError) as refused:
        render(source)
    return str(refused.value)


def test_fields_and_filters_render() -> None:
    out = render('{"text": {{ (release ~ " " ~ version ~ ": " ~ reason)|tojson }}, "w": {{ weight }},'
                 ' "v": {{ "%.3f"|format(trigger_value) }}, "notes": {{ release_notes|tojson }}}')
    assert out == ('{"text": "checkout 2.5.0: error-rate \\"high\\" \\u003cb\\u003e", "w": 50, "v": 0.012,'
                   ' "notes": null}')
    text = render("{% for part in summary.split(' ')[:2] %}[{{ part|upper }}]{% endfor %}"
                  "{% set block %}{{ event }}{% endset %} {{ block|lower }} {{ [1, 2, 3]|sum }}")
    assert text == "[SHOP/CHECKOUT][2.5.0] rolledback 6"


def test_a_misspelt_field_fails_naming_it() -> None:
    assert "'relase' is undefined" in refusal("{{ relase }}")


def test_the_event_namespace_is_a_field() -> None:
    # Jinja's `namespace()` is not offered: the name is the Release's namespace.
    assert render("{{ namespace }}/{{ release }}") == "shop/checkout"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ release.__class__.__init__.__globals__ }}",
    "{{ range.__self__ }}",
    "{{ cycler }}{{ lipsum(1) }}",
])
def test_the_sandbox_refuses_internals(source: str) -> None:
    reason = refusal(source)
    assert "unsafe" in reason or "undefined" in reason.lower()


def test_no_mutation_and_no_str_format() -> None:
    assert "unsafe" in refusal("{% set l = [1] %}{{ l.append(2) }}")
    assert "str.format" in refusal("{{ '{:>999999999}'.format(1) }}")


@pytest.mark.parametrize(("source", "reason"), [
    ("{% for i in range(10**9) %}x{% endfor %}", "over the template limit of 10000"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "steps"),
    ("{% for i in range(10000) %}" + "x" * 100 + "{% endfor %}", "rendered body"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ("{% macro f(n) %}{% for i in range(9) %}{{ f(n) }}{% endfor %}{% endmacro %}{{ f(1) }}", ""),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursion"),
    ("{{ 'x' * 10**9 }}", "larger than 65536"),
    ("{{ [1] * 10**9 }}", "larger than 65536"),
    ("{{ 7 ** (10 ** 6) }}", "bits"),
    ("{% set a = 'xxxxxxxx' %}" + "{% set a = a ~ a %}" * 40, "larger than 65536"),
    ("{% set a = 'xxxxxxxx' %}" + "{% set a %}{{ a }}{{ a }}{% endset %}" * 40, "larger than 65536"),
    ("{% set a = ['" + "x" * 64 + "'] %}" + "{% set a = [a, a, a, a] %}" * 30 + "{{ a }}", "larger than 65536"),
    ("{{ '%0999999999d' % 1 }}", "widths over 1000"),
    ("{{ '%0999999999d'|format(1) }}", "widths over 1000"),
    ("{{ 'x'|center(999999999) }}", "over the template limit"),
    ("{{ ('x' * 60000)|replace('', 'x' * 60000) }}", "larger than 65536"),
    ("{{ ('x' * 60000).replace('', 'yy') }}", "larger than 65536"),
    ("{{ range(10000)|map('string')|join('x' * 30000) }}", "larger than 65536"),
    ("{{ ('a\n' * 30000)|indent(9999) }}", "larger than 65536"),
    ("{% for i in range(10000) %}{% set s = ('x' * 30000)|list %}{% endfor %}", "in all"),
])
@pytest.mark.timeout(30)
def test_hostile_templates_are_refused_with_a_reason(source: str, reason: str) -> None:
    assert reason in refusal(source)


def test_bounds_hold_for_any_nesting_of_loops() -> None:
    # The worst a template within the CRD's length can do: every loop as deep as it goes.
    source = "{% for a in range(10000) %}" * 50 + "{{ a }}" + "{% endfor %}" * 50
    assert len(source) < template.TEMPLATE_MAX_LENGTH
    refusal(source)


def test_a_template_that_does_not_compile_is_an_invalid_spec_naming_the_field() -> None:
    spec = parse_spec({
        "version": "1.0.0", "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
        "strategy": {"type": "BigBang", "bigBang": {}},
        "notifications": [
            {"name": "fine", "webhook": {"url": "https://hooks.example/a", "template": "{{ summary }}"}},
            {"name": "broken", "webhook": {"url": "https://hooks.example/b", "template": "{% for x in %}"}},
            {"name": "unknown", "webhook": {"url": "https://hooks.example/c", "template": "{{ x|pprint }}"}},
        ],
    })
    errors = validate_spec(spec, {"UTC"})
    assert [e.path for e in errors] == ["spec.notifications[1].webhook.template",
                                        "spec.notifications[2].webhook.template"]
    assert "line 1" in errors[0].message and "No filter named 'pprint'" in errors[1].message


def test_compiling_folds_nothing_and_is_cached() -> None:
    # Jinja's optimizer would evaluate this while compiling, outside any budget.
    compiled = compile_template("{{ 'x' * 10**9 }}")
    assert compile_template("{{ 'x' * 10**9 }}") is compiled
    with pytest.raises(TemplateError):
        compile_template("x" * (template.TEMPLATE_MAX_LENGTH + 1))
