"""The egress layer: the policy's decisions, one request's bounds against real local servers,
and the asking that never holds a stepper."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from glideslope.egress import PENDING, Egress, EgressPolicy, EgressRefused, Kind, Refusal
from glideslope.egress.http import request, session_for

pytestmark = pytest.mark.unit

LOOPBACK = EgressPolicy.from_flags(prometheus_url=None, egress_allow=["127.0.0.0/8"])


# -- the policy ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "allowed"), [
    ("127.0.0.1", False), ("::1", False), ("169.254.169.254", False), ("fe80::1", False),
    ("0.0.0.0", False), ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),
    ("10.0.0.5", True), ("93.184.216.34", True), ("2001:db8::1", True),
])
def test_the_default_policy_denies_loopback_link_local_and_this_host(address: str, allowed: bool) -> None:
    assert EgressPolicy().address_allowed(ipaddress.ip_address(address)) is allowed


def test_the_most_specific_network_decides_and_an_allow_lifts_a_default_deny() -> None:
    policy = EgressPolicy.from_flags(prometheus_url=None, egress_deny=["10.0.0.0/8"],
                                     egress_allow=["10.96.0.10/32", "127.0.0.0/8"])
    assert not policy.address_allowed(ipaddress.ip_address("10.1.2.3"))
    assert policy.address_allowed(ipaddress.ip_address("10.96.0.10"))
    assert policy.address_allowed(ipaddress.ip_address("127.0.0.1"))
    assert not policy.address_allowed(ipaddress.ip_address("169.254.169.254"))


def test_a_bad_cidr_names_the_flag() -> None:
    with pytest.raises(ValueError, match="--egress-allow/--egress-deny"):
        EgressPolicy.from_flags(prometheus_url=None, egress_deny=["10.0.0.0/33"])


@pytest.mark.parametrize(("address", "allowed"), [
    ("http://prometheus.monitoring:9090", True),           # the operator's own --prometheus-url
    ("http://prometheus.monitoring:9090/", True),
    ("http://prometheus.monitoring:9090/tenant-a", True),
    ("http://prometheus.monitoring:9090.evil.example", False),
    ("http://prometheus.monitoring:9091", False),
    ("http://PROMETHEUS.monitoring:9090", True),
    ("http://thanos.monitoring:10902/api", True),           # under an allowed prefix
    ("http://127.0.0.1:9090", True),                       # "http://127.0.0.1:" allows any port
    ("http://127.0.0.1:9090@169.254.169.254/", False),     # user info is never allowed
    ("http://169.254.169.254/", False),
    ("ftp://prometheus.monitoring:9090", False),
])
def test_a_releases_prometheus_must_start_with_an_allowed_prefix(address: str, allowed: bool) -> None:
    policy = EgressPolicy.from_flags(prometheus_url="http://prometheus.monitoring:9090",
                                     prometheus_allow=["http://thanos.monitoring:10902", "http://127.0.0.1:"])
    assert policy.prometheus_allowed(address) is allowed


def test_by_default_only_the_operators_prometheus_is_allowed() -> None:
    policy = EgressPolicy.from_flags(prometheus_url="http://prometheus:9090")
    assert policy.prometheus_allowed("http://prometheus:9090")
    assert not policy.prometheus_allowed("http://other:9090")
    assert not EgressPolicy.from_flags(prometheus_url=None).prometheus_allowed("http://prometheus:9090")


# -- one request's bounds --------------------------------------------------------------------------

class Server:
    """A local HTTP server whose handlers misbehave on purpose."""

    def __init__(self) -> None:
        self.hits = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/ok", self._ok)
        app.router.add_get("/big", self._big)
        app.router.add_get("/trickle", self._trickle)
        app.router.add_get("/redirect", self._redirect)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()

    async def _ok(self, _: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text="fine")

    async def _big(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        response = web.StreamResponse()  # no Content-Length: the cap must hold while reading
        await response.prepare(request)
        chunk = b"SECRET-BODY " * 8192
        for _ in range(200):
            await response.write(chunk)
        return response

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x")
            await asyncio.sleep(0.5)
        return response

    async def _redirect(self, _: web.Request) -> web.Response:
        self.hits += 1
        raise web.HTTPFound(f"http://127.0.0.1:{self.port}/ok")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Server:
    return Server()


def fetch(url: str, *, policy: EgressPolicy | None = LOOPBACK, deadline: float = 2.0,
          max_bytes: int = 4096) -> Any:
    async def go() -> Any:
        async with session_for(policy) as session:
            return await request(session, "GET", url, policy=policy, deadline=deadline, max_bytes=max_bytes)
    return asyncio.run(go())


def test_an_answer_within_the_bounds(server: Server) -> None:
    reply = fetch(server.url("/ok"))
    assert (reply.status, reply.body) == (200, b"fine")


def test_a_body_over_the_cap_is_refused_while_it_streams(server: Server) -> None:
    with pytest.raises(EgressRefused) as refused:
        fetch(server.url("/big"), max_bytes=100_000)
    assert refused.value.refusal == Refusal.TOO_LARGE
    assert "SECRET-BODY" not in str(refused.value) and "more than 100000 bytes" in str(refused.value)


def test_a_trickle_is_cut_at_the_total_deadline(server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(EgressRefused) as refused:
        fetch(server.url("/trickle"), deadline=1.0)
    assert refused.value.refusal == Refusal.DEADLINE
    assert time.monotonic() - started < 5, "a byte every 0.5 s must not extend the deadline"


def test_a_redirect_is_not_followed(server: Server) -> None:
    before = server.hits
    reply = fetch(server.url("/redirect"))
    assert reply.status == 302 and server.hits == before + 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://[::1]:1/", "http://169.254.169.254/latest/",
                                 "http://localhost:1/"])
def test_denied_addresses_are_never_connected_to(url: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        fetch(url, policy=EgressPolicy())
    assert refused.value.refusal == Refusal.DENIED
    assert "denied by the operator's egress policy" in str(refused.value)


def test_only_scheme_host_and_port_are_shown(server: Server) -> None:
    with pytest.raises(EgressRefused) as refused:
        fetch(f"http://user:hunter2@127.0.0.1:{closed_port()}/hooks/T0/s3cr3t?token=x")
    text = str(refused.value)
    assert "hunter2" not in text and "s3cr3t" not in text and "token" not in text
    assert "http://127.0.0.1:" in text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- asking: never a stepper's wait ----------------------------------------------------------------

@pytest.fixture
def egress() -> Iterator[Egress]:
    layer = Egress(LOOPBACK, per_namespace=2)
    yield layer
    layer.close()


def test_an_ask_returns_at_once_and_the_answer_wakes_the_release(egress: Egress) -> None:
    woken: list[tuple[str, str]] = []
    arrived = threading.Event()

    def wake(key: tuple[str, str]) -> None:
        woken.append(key)
        arrived.set()

    egress.set_wake(wake)

    async def slow() -> str:
        await asyncio.sleep(0.3)
        return "answer"

    key = ("team-a", "web")
    started = time.monotonic()
    assert egress.ask(key, "q", Kind.PROMETHEUS, slow, fallback=str) is PENDING
    assert egress.ask(key, "q", Kind.PROMETHEUS, slow, fallback=str) is PENDING, "in flight: not asked twice"
    assert time.monotonic() - started < 0.1
    assert arrived.wait(5) and woken == [key]
    assert egress.ask(key, "q", Kind.PROMETHEUS, slow, fallback=str) == "answer"
    assert egress.ask(key, "q", Kind.PROMETHEUS, slow, fallback=str) is PENDING, "handed out once, then asked anew"


def test_a_request_that_raises_still_answers_through_the_fallback(egress: Egress) -> None:
    arrived = threading.Event()
    egress.set_wake(lambda _: arrived.set())

    async def broken() -> str:
        raise RuntimeError("boom")

    egress.ask(("ns", "r"), "t", Kind.WEBHOOK, broken, fallback=lambda why: f"failed: {why}")
    assert arrived.wait(5)
    answer = egress.ask(("ns", "r"), "t", Kind.WEBHOOK, broken, fallback=str)
    assert answer == "failed: webhook request failed (RuntimeError)"


def test_one_namespaces_black_holes_never_delay_another_namespace(egress: Egress) -> None:
    done: dict[tuple[str, str], float] = {}
    lock = threading.Lock()

    def wake(key: tuple[str, str]) -> None:
        with lock:
            done.setdefault(key, time.monotonic())

    egress.set_wake(wake)

    async def black_hole() -> str:
        await asyncio.sleep(30)
        return "never"

    async def quick() -> str:
        return "ok"

    started = time.monotonic()
    for i in range(20):
        egress.ask(("hostile", f"r{i}"), "gate", Kind.WEBHOOK, black_hole, fallback=str)
    for i in range(5):
        egress.ask(("honest", f"r{i}"), "gate", Kind.WEBHOOK, quick, fallback=str)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(k[0] == "honest" for k in done) < 5:
        time.sleep(0.01)
    assert sum(k[0] == "honest" for k in done) == 5
    assert max(t for k, t in done.items() if k[0] == "honest") - started < 2
    assert not any(k[0] == "hostile" for k in done)


def test_a_forgotten_release_keeps_no_answers(egress: Egress) -> None:
    arrived = threading.Event()
    egress.set_wake(lambda _: arrived.set())

    async def quick() -> str:
        return "ok"

    egress.ask(("ns", "gone"), "t", Kind.PROMETHEUS, quick, fallback=str)
    assert arrived.wait(5)
    egress.forget(("ns", "gone"))

    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    assert egress.ask(("ns", "gone"), "t", Kind.PROMETHEUS, slow, fallback=str) is PENDING, "asked anew"
    assert egress.in_flight(("ns", "gone")) == {"t"}
