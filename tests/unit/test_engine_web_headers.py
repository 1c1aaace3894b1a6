"""A web trigger's `headersFrom` in the engine: its Secret read (in the Release's namespace) for
each measurement about to start, not for one in flight; its headers sent with the plain ones,
replacing those of the same name; a Secret that cannot be used makes the Release Degraded
(SecretUnreadable, naming the field) and nothing is measured, so no GET goes without them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from glideslope import engine
from glideslope.api import Release, parse_release
from glideslope.core.analysis import Measurement
from glideslope.core.triggers import Due
from glideslope.egress import EgressPolicy
from glideslope.kube.client import Kube
from glideslope.metrics import OperatorMetrics
from glideslope.runtime import Runtime
from tests.unit.fakes import T0, make_spec
from tests.unit.test_kube_secrets import CONSENT, NS, VALUES, FakeCore

pytestmark = pytest.mark.unit

KEY = (NS, "web")
URL = "http://status.example/q?rev=r1"
FIELD = "spec.analysis.triggers[1].provider.web.headersFrom"


def release(headers_from: dict[str, Any] | None = None) -> Release:
    spec = make_spec({"type": "Canary", "canary": {"steps": [{"setWeight": 20}]}}).to_dict()
    web: dict[str, Any] = {"url": "http://status.example/q?rev={{revision}}", "jsonPath": "$.v",
                           "headers": [{"name": "authorization", "value": "plain"},
                                       {"name": "X-Team", "value": "shop"}]}
    if headers_from is not None:
        web["headersFrom"] = headers_from
    spec["analysis"] = {"interval": "1s", "triggers": [
        {"name": "errors", "query": "vector(0)", "failureCondition": "result > 1"},
        {"name": "queue", "provider": {"web": web}, "failureCondition": "result > 1"}]}
    return parse_release({"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
                          "metadata": {"name": "web", "namespace": NS, "resourceVersion": "1"}, "spec": spec})


class FakeWeb:
    """What `Runtime.web_provider` hands out: records the headers of each GET."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, str]]] = []

    def provider(self, json_path: str, headers: tuple[tuple[str, str], ...]) -> Any:
        web = self

        class Provider:
            async def query(self, query: str) -> Measurement:
                web.asked.append((query, dict(headers)))
                return Measurement(0.5, None, T0)
        return Provider()


@pytest.fixture(name="core")
def fake_core() -> FakeCore:
    core = FakeCore()
    core.add("status-token", VALUES, CONSENT)
    return core


@pytest.fixture(name="rt")
def runtime(core: FakeCore, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    built = Runtime(Kube(None, core, None, None), lambda namespace, name: None, metrics=OperatorMetrics(),
                    policy=EgressPolicy())
    yield built
    built.egress.close()


def due(rel: Release) -> list[Due]:
    return [Due(rel.spec.analysis.triggers[1], URL)]


def measured(rt: Runtime, rel: Release, headers: dict[str, dict[str, str]]) -> Measurement:
    deadline = time.monotonic() + 5
    while not (got := engine._collected(rt, KEY, rel, due(rel), None, T0, headers)):
        assert time.monotonic() < deadline, "no answer"
        time.sleep(0.01)
    return got["queue"][1]


def test_the_secrets_headers_go_with_the_plain_ones_replacing_the_same_name(
        rt: Runtime, core: FakeCore, monkeypatch: pytest.MonkeyPatch) -> None:
    web = FakeWeb()
    monkeypatch.setattr(rt, "web_provider", web.provider)
    rel = release({"name": "status-token", "keys": ["Authorization", "X-Tenant"]})
    headers = engine._web_headers(rt, KEY, {"metadata": {}}, rel, due(rel))
    assert headers == {"queue": {"Authorization": "Bearer t0p-s3cret", "X-Tenant": "acme-tenant-value"}}
    assert core.reads == [(NS, "status-token")]  # the Release's namespace
    assert measured(rt, rel, headers).value == 0.5
    # `authorization: plain` is replaced (header names are case-insensitive), `X-Team` kept; no
    # key of the Secret that is not named.
    assert web.asked == [(URL, {"X-Team": "shop", "Authorization": "Bearer t0p-s3cret",
                                "X-Tenant": "acme-tenant-value"})]


def test_a_measurement_in_flight_reads_no_secret(rt: Runtime, core: FakeCore, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = release({"name": "status-token", "keys": ["Authorization"]})
    monkeypatch.setattr(rt.egress, "in_flight", lambda key: frozenset({("trigger", "queue", URL)}))
    assert engine._web_headers(rt, KEY, {"metadata": {}}, rel, due(rel)) == {}
    assert core.reads == []


def test_a_request_started_without_the_steppers_read_reads_the_secret_itself(
        rt: Runtime, core: FakeCore, monkeypatch: pytest.MonkeyPatch) -> None:
    web = FakeWeb()
    monkeypatch.setattr(rt, "web_provider", web.provider)
    rel = release({"name": "status-token", "keys": ["Authorization"]})
    assert measured(rt, rel, {}).value == 0.5
    assert web.asked[0][1]["Authorization"] == "Bearer t0p-s3cret" and core.reads == [(NS, "status-token")]
    # ... and, its Secret gone meanwhile, is an error measurement naming the field: no GET without it.
    core.secrets.clear()
    answer = measured(rt, rel, {})
    assert answer.value is None and answer.error == f"{FIELD}: Secret {NS}/status-token not found"
    assert len(web.asked) == 1


@pytest.mark.parametrize(("change", "expected"), [
    (lambda core: core.secrets.clear(), f"{FIELD}: Secret {NS}/status-token not found"),
    (lambda core: core.add("status-token", VALUES), f"{FIELD}: Secret {NS}/status-token is not labelled "
                                                    'glideslope.dev/release-secret="true"'),
    (lambda core: core.add("status-token", {"X-Tenant": "t"}, CONSENT),
     f"{FIELD}: Secret {NS}/status-token has no key 'Authorization'"),
])
def test_a_secret_that_cannot_be_used_is_degraded_naming_the_field_and_nothing_is_measured(
        rt: Runtime, core: FakeCore, monkeypatch: pytest.MonkeyPatch, change: Any, expected: str) -> None:
    change(core)
    invalid: list[tuple[list[str], str]] = []
    monkeypatch.setattr(engine, "_invalid", lambda kube, body, rel, found, reason="": invalid.append((found, reason)))
    monkeypatch.setattr(rt, "web_provider", lambda *_: pytest.fail("measured without its headers"))
    rel = release({"name": "status-token", "keys": ["Authorization"]})
    assert engine._web_headers(rt, KEY, {"metadata": {}}, rel, due(rel)) is None
    [(problems, reason)] = invalid
    assert reason == "SecretUnreadable" and len(problems) == 1 and problems[0].startswith(expected), problems
    assert not any(v in problems[0] for v in VALUES.values())


def test_a_trigger_without_headers_from_reads_no_secret(rt: Runtime, core: FakeCore) -> None:
    rel = release()
    assert engine._web_headers(rt, KEY, {"metadata": {}}, rel, due(rel)) == {}
    assert core.reads == []
