"""The Prometheus adapter against a fake of Prometheus' HTTP API serving recorded answers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from glideslope.core.analysis import Measurement
from glideslope.prom import MetricProvider, PrometheusAuth, PrometheusProvider

pytestmark = pytest.mark.unit

# Answers as Prometheus 2.42 gives them for /api/v1/query.
ONE_SAMPLE = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [1764140000.123, "0.30120481927710846"]}]}}
SCALAR = {"status": "success", "data": {"resultType": "scalar", "result": [1764140000.123, "1"]}}
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}
NAN = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [1764140000.123, "NaN"]}]}}
INF = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [1764140000.123, "+Inf"]}]}}
MANY = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"pod": f"web-{i}"}, "value": [1764140000.123, "0.1"]} for i in range(3)]}}
MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": [
    {"metric": {"pod": "web-0"}, "values": [[1764140000.123, "1"], [1764140001.123, "2"]]}]}}
STRING = {"status": "success", "data": {"resultType": "string", "result": [1764140000.123, "hello"]}}
BAD_DATA = {"status": "error", "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:10: parse error: unclosed left parenthesis'}
EXECUTION = {"status": "error", "errorType": "execution",
             "error": "invalid regular expression in label_replace(): ("}


@dataclass
class Answer:
    status: int
    body: bytes
    delay: float = 0.0


@dataclass
class FakePrometheus:
    url: str
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    ranges: list[dict[str, list[str]]] = field(default_factory=list)
    """The parameters of each range query."""

    def answer(self, query: str, body: Any, status: int = 200, delay: float = 0.0) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[query] = Answer(status, raw, delay)


def _serve(fake: FakePrometheus, server: ThreadingHTTPServer) -> Iterator[FakePrometheus]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query).get("query", [""])[0]
            fake.seen.append((query, dict(self.headers.items())))
            found = fake.answers.get(query) if url.path in ("/api/v1/query", "/api/v1/query_range") else None
            if url.path == "/api/v1/query_range":
                fake.ranges.append(parse_qs(url.query))
            answer = found or Answer(404, b"404 page not found\n")
            time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:
                pass  # the client gave up (the timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    yield from _serve(FakePrometheus(f"http://127.0.0.1:{server.server_address[1]}"), server)


def measure(provider: PrometheusProvider, query: str) -> Measurement:
    return asyncio.run(provider.query(query))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_it_is_a_metric_provider() -> None:
    provider: MetricProvider = PrometheusProvider("http://127.0.0.1:9090")
    assert provider is not None


@pytest.mark.parametrize(("body", "value"), [
    (ONE_SAMPLE, 0.30120481927710846),
    (SCALAR, 1.0),
    (EMPTY, None),
    (NAN, None),
    (INF, None),
])
def test_a_number_or_no_data(prom: FakePrometheus, body: Any, value: float | None) -> None:
    prom.answer("q", body)
    at = datetime(2026, 11, 26, 12, tzinfo=UTC)
    m = measure(PrometheusProvider(prom.url, clock=lambda: at), "q")
    assert m == Measurement(value=value, error=None, at=at)


@pytest.mark.parametrize(("body", "status", "error"), [
    (MANY, 200, "query returned 3 series; aggregate it (sum, max...)"),
    (MATRIX, 200, "range vector"),
    (STRING, 200, "query returned 'hello', not a number"),
    (BAD_DATA, 400, 'Prometheus refused the query: invalid parameter "query": 1:10: parse error'),
    (EXECUTION, 422, "Prometheus answered 422 (execution): invalid regular expression"),
    (b"upstream connect error", 503, "Prometheus answered 503: not Prometheus' error JSON"),
    (b"Internal Server Error", 500, "Prometheus answered 500: not Prometheus' error JSON"),
    (b"", 401, "Prometheus answered 401: unauthorized"),
    (b"<html>a login page</html>", 200, "unexpected answer from http://127.0.0.1"),
    ({"status": "success"}, 200, "unexpected answer"),
])
def test_errors_come_back_as_measurements(prom: FakePrometheus, body: Any, status: int, error: str) -> None:
    prom.answer("q", body, status)
    m = measure(PrometheusProvider(prom.url), "q")
    assert m.value is None
    assert m.error is not None and error in m.error


def test_a_server_error_is_not_retried(prom: FakePrometheus) -> None:
    prom.answer("q", b"oops", 503)
    measure(PrometheusProvider(prom.url), "q")
    assert len(prom.seen) == 1


def test_check_returns_prometheus_own_refusal_only(prom: FakePrometheus) -> None:
    prom.answer("sum(rate(", BAD_DATA, 400)
    prom.answer("ok", ONE_SAMPLE)
    prom.answer("slow-to-fail", EXECUTION, 422)
    prom.answer("down", b"", 503)
    provider = PrometheusProvider(prom.url)

    async def checks() -> list[str | None]:
        return [await provider.check(q) for q in ("sum(rate(", "ok", "slow-to-fail", "down")]

    assert asyncio.run(checks()) == [BAD_DATA["error"], None, None, None]
    unreachable = PrometheusProvider(f"http://127.0.0.1:{closed_port()}")
    assert asyncio.run(unreachable.check("sum(rate(")) is None


def test_a_slow_prometheus_times_out_without_blocking_the_loop(prom: FakePrometheus) -> None:
    prom.answer("slow", ONE_SAMPLE, delay=3)
    provider = PrometheusProvider(prom.url, timeout=0.5)

    async def main() -> tuple[Measurement, int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        m = await provider.query("slow")
        elapsed = time.monotonic() - started
        task.cancel()
        return m, ticks, elapsed

    m, ticks, elapsed = asyncio.run(main())
    assert m.value is None and m.error is not None
    assert "within 0.5s" in m.error
    assert elapsed < 2.0
    assert ticks >= 5  # the event loop ran while the query waited


def test_connection_refused_is_an_error_quickly() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{closed_port()}", timeout=5)
    started = time.monotonic()
    m = measure(provider, "up")
    assert m.value is None and m.error is not None
    assert "cannot connect to http://127.0.0.1:" in m.error and "Connection refused" in m.error
    assert time.monotonic() - started < 2
    assert asyncio.run(provider.is_online()) is False


def test_is_online(prom: FakePrometheus) -> None:
    prom.answer("vector(1)", ONE_SAMPLE | {"data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1764140000.1, "1"]}]}})
    assert asyncio.run(PrometheusProvider(prom.url).is_online()) is True
    prom.answer("vector(1)", b"", 401)
    assert asyncio.run(PrometheusProvider(prom.url).is_online()) is False


def test_bearer_token_is_sent(prom: FakePrometheus) -> None:
    prom.answer("q", ONE_SAMPLE)
    measure(PrometheusProvider(prom.url, PrometheusAuth(token="s3cret")), "q")
    assert prom.seen[-1][1]["Authorization"] == "Bearer s3cret"


def test_basic_auth_is_sent(prom: FakePrometheus) -> None:
    prom.answer("q", ONE_SAMPLE)
    measure(PrometheusProvider(prom.url, PrometheusAuth(username="alice", password="pa:ss")), "q")
    assert prom.seen[-1][1]["Authorization"] == "Basic " + base64.b64encode(b"alice:pa:ss").decode()


def test_no_auth_sends_no_authorization(prom: FakePrometheus) -> None:
    prom.answer("q", ONE_SAMPLE)
    measure(PrometheusProvider(prom.url + "/"), "q")
    assert "Authorization" not in prom.seen[-1][1]


@pytest.mark.parametrize("kwargs", [
    {"token": "t", "username": "u", "password": "p"},
    {"username": "u"},
    {"password": "p"},
])
def test_inconsistent_auth_is_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="Prometheus auth"):
        PrometheusAuth(**kwargs)


def test_secrets_stay_out_of_repr() -> None:
    provider = PrometheusProvider("http://p:9090", PrometheusAuth(username="alice", password="hunter2"))
    assert "hunter2" not in repr(provider) and "alice" in repr(provider)
    assert "tok" not in repr(PrometheusAuth(token="tok"))


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=prometheus", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_prom(tls_cert: tuple[Path, Path]) -> Iterator[FakePrometheus]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(FakePrometheus(f"https://127.0.0.1:{server.server_address[1]}"), server)


def test_ca_bundle_is_trusted_from_a_temporary_file_removed_on_close(
        tls_prom: FakePrometheus, tls_cert: tuple[Path, Path]) -> None:
    tls_prom.answer("q", ONE_SAMPLE)
    untrusted = measure(PrometheusProvider(tls_prom.url, timeout=2), "q")
    assert untrusted.error is not None and "TLS error" in untrusted.error

    with PrometheusProvider(tls_prom.url, PrometheusAuth(token="t", ca_cert=tls_cert[0].read_text())) as provider:
        path = provider.ca_path
        assert path is not None and Path(path).read_text() == tls_cert[0].read_text()
        assert os.stat(path).st_mode & 0o077 == 0
        assert measure(provider, "q").value == pytest.approx(0.3012, abs=1e-4)
    assert not Path(path).exists()
    assert provider.ca_path is None
    closed = measure(provider, "q")
    assert closed.value is None and closed.error is not None and "closed" in closed.error


def test_concurrent_queries(prom: FakePrometheus) -> None:
    prom.answer("a", ONE_SAMPLE, delay=0.3)
    prom.answer("b", EMPTY, delay=0.3)
    provider = PrometheusProvider(prom.url)

    async def main() -> list[Measurement]:
        return list(await asyncio.gather(*(provider.query(q) for q in ["a", "b"] * 4)))

    started = time.monotonic()
    results = asyncio.run(main())
    assert time.monotonic() - started < 1.5
    assert [m.value is None for m in results] == [False, True] * 4


def test_a_range_query_gives_every_value_of_every_series(prom: FakePrometheus) -> None:
    """The judge's samples: (time, value) of each series, NaN (a ratio over no requests) left out."""
    two = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": "a"}, "values": [[100, "0.5"], [102, "NaN"], [104, "0.25"]]},
        {"metric": {"pod": "b"}, "values": [[100, "1"]]}]}}
    prom.answer("ratio", two)
    start, end = datetime(2026, 11, 26, 12, tzinfo=UTC), datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    side = asyncio.run(PrometheusProvider(prom.url).query_range("ratio", start, end, 2.0))
    assert side.error is None and side.query == "ratio"
    assert sorted(side.samples) == [(100.0, 0.5), (100.0, 1.0), (104.0, 0.25)]
    (params,) = prom.ranges
    assert params["step"] == ["2s"] and params["start"] == [str(round(start.timestamp()))]


@pytest.mark.parametrize(("body", "status", "error"), [
    (BAD_DATA, 400, "Prometheus refused the query"),
    (ONE_SAMPLE, 200, "did not return a range of series"),
])
def test_a_range_query_that_fails_is_an_error_never_samples(prom: FakePrometheus, body: Any, status: int,
                                                            error: str) -> None:
    prom.answer("q", body, status)
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    side = asyncio.run(PrometheusProvider(prom.url).query_range("q", now, now, 1.0))
    assert side.samples == () and side.error is not None and error in side.error
