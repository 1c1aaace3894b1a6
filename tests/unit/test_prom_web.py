"""The web metric provider (`prom.web`) against a real local HTTP server, through the egress layer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web

from glideslope.core.analysis import Measurement
from glideslope.egress import Egress, EgressPolicy
from glideslope.prom import MetricProvider, WebProvider
from glideslope.prom.web import JsonPathError, compile_json_path, number_at

pytestmark = pytest.mark.unit

T = TypeVar("T")
# The server listens on 127.0.0.1, which the default egress policy denies.
EGRESS = Egress(EgressPolicy.from_flags(prometheus_url=None, egress_allow=["127.0.0.0/8"]))
DENYING = Egress(EgressPolicy())


@pytest.fixture(autouse=True, scope="module")
def _close_egress() -> Iterator[None]:
    yield
    EGRESS.close()
    DENYING.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def serve(handler: Any, path: str, provider: WebProvider, query: str = "") -> tuple[Measurement, list[Any]]:
    """Measure `provider` against a server whose every answer is `handler(request)`."""
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        result: web.StreamResponse = await handler(request)
        return result

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await provider.query(f"http://127.0.0.1:{port}{path}{query}"), seen
    finally:
        await runner.cleanup()


def answer(payload: Any, status: int = 200) -> Any:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, text=json.dumps(payload), content_type="application/json")
    return handler


def test_a_number_at_the_json_path() -> None:
    provider = WebProvider("$.data.errorRate", {"X-Team": "shop"}, egress=EGRESS)
    measured, seen = run(serve(answer({"data": {"errorRate": 0.0004}}), "/metrics", provider, "?rev=abc"))
    assert (measured.value, measured.error) == (0.0004, None)
    (request,) = seen
    assert request.method == "GET" and request.path_qs == "/metrics?rev=abc"
    assert request.headers["X-Team"] == "shop" and request.headers["Accept"] == "application/json"


def test_it_is_a_metric_provider() -> None:
    provider: MetricProvider = WebProvider("$.v", egress=EGRESS)
    assert run(provider.is_online())


def test_a_filter_and_a_number_in_a_string() -> None:
    provider = WebProvider('$.checks[?(@.name == "p95")].value', egress=EGRESS)
    measured, _ = run(serve(answer({"checks": [{"name": "p50", "value": "0.1"}, {"name": "p95", "value": "0.25"}]}),
                            "/", provider))
    assert (measured.value, measured.error) == (0.25, None)


@pytest.mark.parametrize(("payload", "value", "error"), [
    ({"other": 1}, None, None),  # nothing selected: no data
    ({"v": None}, None, None),  # null: no data
    ({"v": "NaN"}, None, None),  # not finite: no data, never a pass
    ({"v": True}, None, "JSONPath $.v selects true, not a number"),
    ({"v": {"a": 1}}, None, 'JSONPath $.v selects {"a": 1}, not a number'),
    ({"v": "fast"}, None, 'JSONPath $.v selects "fast", not a number'),
])
def test_what_is_not_one_number(payload: Any, value: float | None, error: str | None) -> None:
    assert number_at(compile_json_path("$.v"), payload, "$.v") == (value, error)


def test_several_values_are_an_error() -> None:
    value, error = number_at(compile_json_path("$.v[*]"), {"v": [1, 2, 3, 4]}, "$.v[*]")
    assert value is None and error == "JSONPath $.v[*] selects 4 values (1, 2, 3, ...); select exactly one"


def test_an_error_status_and_a_body_that_is_not_json() -> None:
    provider = WebProvider("$.v", egress=EGRESS)
    measured, _ = run(serve(answer({"v": 1}, status=503), "/", provider))
    assert measured.value is None and measured.error is not None and "answered HTTP 503" in measured.error

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")
    measured, _ = run(serve(html, "/", provider))
    assert (measured.value, measured.error) == (None, "the answer is not JSON")


def test_the_answer_is_bounded() -> None:
    provider = WebProvider("$.v", egress=EGRESS, max_bytes=1024)
    measured, _ = run(serve(answer({"v": 1, "pad": "x" * 4096}), "/", provider))
    assert measured.value is None and measured.error is not None and "more than 1024 bytes" in measured.error


def test_the_deadline_holds() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="{}")
    provider = WebProvider("$.v", egress=EGRESS, timeout=0.3)
    measured, _ = run(serve(slow, "/", provider))
    assert measured.value is None and measured.error is not None


def test_the_egress_policy_refuses_before_and_at_the_request() -> None:
    provider = WebProvider("$.v", egress=DENYING)
    refused = run(provider.check("http://127.0.0.1:9/x"))
    assert refused is not None and "denied" in refused
    measured, seen = run(serve(answer({"v": 1}), "/", provider))
    assert measured.value is None and measured.error is not None and "denied" in measured.error and not seen


def test_a_json_path_that_does_not_parse() -> None:
    with pytest.raises(JsonPathError, match="invalid JSONPath"):
        compile_json_path("$..[")
    provider = WebProvider("$..[", egress=EGRESS)
    assert run(provider.check("http://127.0.0.1:9/")) is not None
    measured = run(provider.query("http://127.0.0.1:9/"))
    assert measured.error is not None and "invalid JSONPath" in measured.error
