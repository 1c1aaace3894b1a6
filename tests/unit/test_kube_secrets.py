"""Secrets by consent (kube/secrets.py): a Release uses a Secret only when it is labelled
`glideslope.dev/release-secret: "true"`, never a ServiceAccount token, only the keys it names;
and what it says about a Secret names the field, the Secret and keys, never a value."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest

from glideslope.api import MAX_HEADER_VALUE_CHARS, HeadersFrom
from glideslope.core.model import RELEASE_SECRET_LABEL
from glideslope.kube import secrets
from glideslope.kube.client import Kube
from glideslope.kube.secrets import SecretUnreadable

pytestmark = pytest.mark.unit

NS = "shop"
CONSENT = {RELEASE_SECRET_LABEL: "true"}
VALUES = {"Authorization": "Bearer t0p-s3cret", "X-Tenant": "acme-tenant-value", "other": "n0t-f0r-y0u"}
WHERE = "gate change: headersFrom: Secret shop/api"


@dataclass
class FakeCore:
    """`read_namespaced_secret` of CoreV1Api over a few Secrets, as the API server returns them."""

    secrets: dict[str, kubernetes.client.V1Secret] = field(default_factory=dict)
    status: int | None = None
    """Answer every read with this HTTP error instead."""
    reads: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, data: dict[str, str], labels: dict[str, str] | None = None,
            type_: str = "Opaque", raw: dict[str, str] | None = None) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()} | (raw or {})
        self.secrets[name] = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=NS, labels=labels),
            type=type_, data=encoded)

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        self.reads.append((namespace, name))
        if self.status is not None:
            raise kubernetes.client.ApiException(status=self.status, reason="Nope")
        if namespace != NS or name not in self.secrets:
            raise kubernetes.client.ApiException(status=404, reason="Not Found")
        return self.secrets[name]


def kube(core: FakeCore) -> Kube:
    return Kube(None, core, None, None)


def refused(core: FakeCore, name: str = "api", where: str = WHERE, keys: list[str] | None = None) -> str:
    """The message of reading the Secret, which must fail; checked to carry no value."""
    with pytest.raises(SecretUnreadable) as caught:
        secrets.read(kube(core), NS, name, where, keys=keys)
    message = str(caught.value)
    assert where in message
    for value in VALUES.values():
        assert value not in message and base64.b64encode(value.encode()).decode() not in message
    return message


def test_a_labelled_secret_is_read_whole() -> None:
    core = FakeCore()
    core.add("api", VALUES, CONSENT)
    assert secrets.read(kube(core), NS, "api", WHERE) == VALUES
    assert core.reads == [(NS, "api")]


def test_keys_select_what_is_returned() -> None:
    core = FakeCore()
    core.add("api", VALUES, CONSENT | {"team": "shop"})
    got = secrets.read(kube(core), NS, "api", WHERE, keys=["X-Tenant", "Authorization"])
    assert got == {"X-Tenant": "acme-tenant-value", "Authorization": "Bearer t0p-s3cret"}


def test_keys_not_asked_for_are_not_decoded() -> None:
    core = FakeCore()
    core.add("api", {"Authorization": "Bearer t0p-s3cret"}, CONSENT, raw={"binary": base64.b64encode(b"\xff").decode()})
    assert secrets.read(kube(core), NS, "api", WHERE, keys=["Authorization"]) == {
        "Authorization": "Bearer t0p-s3cret"}
    assert "key 'binary' is not UTF-8 text" in refused(core, keys=["binary"])


@pytest.mark.parametrize("labels", [None, {}, {"team": "shop"}, {RELEASE_SECRET_LABEL: "false"},
                                    {RELEASE_SECRET_LABEL: "True"}, {RELEASE_SECRET_LABEL: ""}])
def test_a_secret_without_consent_is_refused(labels: dict[str, str] | None) -> None:
    core = FakeCore()
    core.add("api", VALUES, labels)
    message = refused(core)
    assert message == (
        f'{WHERE} is not labelled {RELEASE_SECRET_LABEL}="true": its owner must consent to Releases '
        f"using it (kubectl label secret api -n {NS} {RELEASE_SECRET_LABEL}=true)")
    refused(core, keys=["Authorization"])


def test_a_service_account_token_is_never_sent_even_when_labelled() -> None:
    core = FakeCore()
    core.add("sa-token", {"token": "eyJhbGciOi-sa-token", "ca.crt": "CERT", "namespace": NS},
             CONSENT, type_="kubernetes.io/service-account-token")
    message = refused(core, "sa-token")
    assert "kubernetes.io/service-account-token" in message and "never sent" in message
    assert "eyJhbGciOi-sa-token" not in message
    with pytest.raises(SecretUnreadable) as caught:
        secrets.prometheus_auth(kube(core), NS, "sa-token")
    assert str(caught.value).startswith("spec.analysis.prometheus.secretRef: Secret shop/sa-token is of type")


def test_a_key_missing_from_the_secret_is_refused_by_name() -> None:
    core = FakeCore()
    core.add("api", VALUES, CONSENT)
    assert refused(core, keys=["Authorization", "X-Api-Key"]) == f"{WHERE} has no key 'X-Api-Key'"
    assert refused(core, keys=["X-Api-Key", "X-Other"]) == f"{WHERE} has no keys 'X-Api-Key', 'X-Other'"


def test_headers_are_the_named_keys_trimmed_and_each_one_bounded_line() -> None:
    core = FakeCore()
    core.add("api", {**VALUES, "Authorization": "  Bearer t0p-s3cret\n"}, CONSENT)
    field = "spec.analysis.triggers[2].provider.web.headersFrom"
    source = HeadersFrom(name="api", keys=["Authorization", "X-Tenant"])
    assert secrets.headers(kube(core), NS, source, field) == {
        "Authorization": "Bearer t0p-s3cret", "X-Tenant": "acme-tenant-value"}
    where = f"{field}: Secret {NS}/api"
    # A value that would split into two header lines, or one no server takes: refused by key, unquoted.
    for bad, why in (("Bearer t0p-s3cret\r\nX-Admin: yes", "holds a line break or NUL"),
                     ("Bearer t0p-s3cret" + "x" * MAX_HEADER_VALUE_CHARS,
                      "characters; a header value may have at most")):
        core.add("api", {**VALUES, "Authorization": bad}, CONSENT)
        with pytest.raises(SecretUnreadable) as caught:
            secrets.headers(kube(core), NS, source, field)
        message = str(caught.value)
        assert message.startswith(f"{where}: key 'Authorization' ") and why in message, message
        assert "t0p-s3cret" not in message
    core.add("api", VALUES, CONSENT)
    with pytest.raises(SecretUnreadable) as missing:
        secrets.headers(kube(core), NS, HeadersFrom(name="api", keys=["X-Api-Key"]), field)
    assert str(missing.value) == f"{where} has no key 'X-Api-Key'"


def test_value_reads_one_key_of_a_labelled_secret() -> None:
    core = FakeCore()
    core.add("hooks", {"url": "https://hooks.example/T0/s3cret-path"}, CONSENT)
    where = "urlFrom: Secret shop/hooks"
    assert secrets.value(kube(core), NS, "hooks", "url", where) == "https://hooks.example/T0/s3cret-path"
    with pytest.raises(SecretUnreadable) as missing:
        secrets.value(kube(core), NS, "hooks", "address", where)
    assert str(missing.value) == f"{where} has no key 'address'"
    core.add("hooks", {"url": "https://hooks.example/T0/s3cret-path"})
    with pytest.raises(SecretUnreadable) as caught:
        secrets.value(kube(core), NS, "hooks", "url", where)
    assert str(caught.value).startswith(f"{where} is not labelled {RELEASE_SECRET_LABEL}")
    assert "s3cret-path" not in str(caught.value)


def test_prometheus_auth_needs_consent() -> None:
    core = FakeCore()
    core.add("prom", {"token": " abc-prom-token\n"})
    with pytest.raises(SecretUnreadable) as caught:
        secrets.prometheus_auth(kube(core), NS, "prom")
    message = str(caught.value)
    assert message.startswith(f"spec.analysis.prometheus.secretRef: Secret {NS}/prom is not labelled "
                              f'{RELEASE_SECRET_LABEL}="true"')
    assert "abc-prom-token" not in message
    core.add("prom", {"token": " abc-prom-token\n"}, CONSENT)
    assert secrets.prometheus_auth(kube(core), NS, "prom").token == "abc-prom-token"


@pytest.mark.parametrize(("status", "expected"), [
    (404, f"{WHERE} not found"),
    (403, f"{WHERE}: the operator may not read it (grant get on secrets in {NS}"),
    (500, f"{WHERE}: cannot read it (500 Nope)"),
])
def test_api_errors_name_the_field(status: int, expected: str) -> None:
    assert refused(FakeCore(status=status)).startswith(expected)
