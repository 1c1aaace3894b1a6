"""Analysis templates and the web metric provider, on the sandbox: the chart's
ClusterAnalysisTemplate `error-rate` used by Releases in two namespaces, an AnalysisTemplate
that is missing and then arrives, and a trigger read from a local HTTP endpoint answering JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.analysis_helpers import trigger_status
from tests.e2e.conftest import create_namespace
from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    events,
    grant_secrets,
    operator_fixture,  # noqa: F401
    release,
    release_finalizers,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [
    {"setWeight": 25}, {"analysis": {"duration": "6s"}}, {"setWeight": 50}, {"analysis": {"duration": "2s"}}]}}
SHIPPED = REPO / "deploy" / "analysis-templates.yaml"


def error_rate(window: str = "5s") -> dict[str, Any]:
    """The chart's `error-rate` check, over a short window for a fast test."""
    return {"interval": "1s", "templates": [
        {"name": "error-rate", "kind": "ClusterAnalysisTemplate", "args": {"window": window}}]}


def degraded(st: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == "Degraded"), {})


@pytest.fixture
def shipped(sandbox: Cluster) -> None:
    """The chart's ClusterAnalysisTemplates, as `kubectl apply -k deploy/` installs them (the same
    objects every test applies, so applying them again changes nothing)."""
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=glideslope-e2e",
                    "-f", str(SHIPPED))


@pytest.fixture
def other(sandbox: Cluster, tmp_path: Path) -> Iterator[tuple[str, Operator]]:
    """A second namespace with its own operator."""
    namespace = create_namespace(sandbox, "templates-other")
    op = Operator(sandbox, namespace, tmp_path / "operator-other.log")
    op.start()
    yield namespace, op
    op.stop()
    print(f"--- operator log ({namespace}) ---\n{op.log()[-4000:]}")
    release_finalizers(sandbox, namespace)
    sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_cluster_template_serves_two_namespaces(sandbox: Cluster, namespace: str, operator: Operator,
                                                  shipped: None, other: tuple[str, Operator]) -> None:
    second, _ = other
    for ns in (namespace, second):
        sandbox.apply(release("web", "1", STEPS, analysis=error_rate()), ns)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    wait_phase(sandbox, second, "web", "Succeeded", version="1")
    # The first namespace's candidate breaks the template's threshold (0.1 %); the second's is healthy.
    sandbox.apply(release("web", "2", STEPS, error_rate=0.3, analysis=error_rate()), namespace)
    sandbox.apply(release("web", "2", STEPS, analysis=error_rate()), second)

    bad = wait_phase(sandbox, namespace, "web", "RolledBack", version="2", timeout=90)
    assert bad["stableRevision"] == v1
    reason = bad["history"][-1]["reason"]
    assert "error-rate" in reason and "result > 0.001" in reason, reason
    good = wait_phase(sandbox, second, "web", "Succeeded", version="2", timeout=90)

    # The template's query, rendered with the args and each Release's own variables.
    for ns, st in ((namespace, bad), (second, good)):
        t = trigger_status(st)
        assert t["severity"] == "critical", t
        assert t["query"] == (
            f'sum(rate(http_requests_total{{namespace="{ns}",revision="{st["revision"]}",code=~"5.."}}[5s]))\n'
            f'/ sum(rate(http_requests_total{{namespace="{ns}",revision="{st["revision"]}"}}[5s]))\n'), t
    assert trigger_status(bad)["state"] == "Failing"
    assert trigger_status(good)["state"] == "Passing" and trigger_status(good)["successes"] >= 1
    assert "RolledBack" in events(sandbox, namespace)


def test_a_missing_template_or_arg_is_an_invalid_spec(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", STEPS), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    uses = {"interval": "1s", "templates": [{"name": "checks", "args": {"window": "5s"}}]}
    sandbox.apply(release("web", "2", STEPS, analysis=uses), namespace)

    def says(text: str) -> dict[str, Any] | None:
        st = status(sandbox, namespace, "web")
        condition = degraded(st)
        ok = condition.get("status") == "True" and condition.get("reason") == "InvalidSpec" \
            and text in condition.get("message", "")
        return st if ok else None

    wait_until(lambda: says(f"spec.analysis.templates[0].name: AnalysisTemplate 'checks' not found in namespace "
                            f"{namespace}"), timeout=30, what="InvalidSpec: template not found")
    # The stable revision keeps serving; no candidate was started.
    assert deployments(sandbox, namespace, "web") == {v1: {"replicas": 4, "ready": 4}}
    assert "InvalidSpec" in events(sandbox, namespace)

    # The template arrives (the change wakes the Release), but wants an arg the Release does not give.
    checks = {"apiVersion": "glideslope.dev/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "checks"},
              "spec": {"args": [{"name": "window"}, {"name": "errors"}], "triggers": [{
                  "name": "errors", "severity": "critical", "failureCondition": "result > 0.5",
                  "query": 'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",'
                           'code="{{args.errors}}"}[{{args.window}}])) or vector(0)'}]}}
    sandbox.apply(checks, namespace)
    wait_until(lambda: says("spec.analysis.templates[0].args.errors: required by AnalysisTemplate 'checks'"),
               timeout=30, what="InvalidSpec: missing arg")
    assert deployments(sandbox, namespace, "web") == {v1: {"replicas": 4, "ready": 4}}

    uses["templates"][0]["args"]["errors"] = "500"
    sandbox.apply(release("web", "2", STEPS, analysis=uses), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
    assert degraded(st).get("status") == "False", st["conditions"]
    assert 'code="500"}[5s]' in trigger_status(st, "errors")["query"]


class Metrics(BaseHTTPRequestHandler):
    """A service reporting one number as JSON; the test sets it, and sees the paths asked."""

    value: float = 0.0
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        body = json.dumps({"data": {"checks": [{"name": "queue", "value": type(self).value}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[Metrics]]]:
    handler = type("Handler", (Metrics,), {"value": 0.0, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def test_a_web_provider_trigger_rolls_back(sandbox: Cluster, namespace: str, operator: Operator,
                                          endpoint: tuple[str, type[Metrics]]) -> None:
    url, handler = endpoint
    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"analysis": {"duration": "120s"}}]}}
    analysis = {"interval": "1s", "triggers": [{
        "name": "queue", "severity": "critical", "failureCondition": "result > 0.5",
        "provider": {"web": {"url": url + "/status?release={{release}}&revision={{revision}}",
                             "jsonPath": '$.data.checks[?(@.name == "queue")].value',
                             "headers": [{"name": "X-Team", "value": "shop"}]}}}]}
    sandbox.apply(release("web", "1", steps, analysis=analysis), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    handler.value = 0.1
    sandbox.apply(release("web", "2", steps, analysis=analysis), namespace)

    def passing() -> dict[str, Any] | None:
        st = status(sandbox, namespace, "web")
        t = trigger_status(st, "queue")
        return st if t.get("state") == "Passing" and t.get("successes", 0) >= 2 else None

    st = wait_until(passing, timeout=60, what="the web trigger passing")
    t = trigger_status(st, "queue")
    assert t["lastValue"] == 0.1 and t["query"] == f"{url}/status?release=web&revision={st['revision']}", t
    assert f"/status?release=web&revision={st['revision']}" in handler.paths
    assert st["phase"] == "Progressing"

    handler.value = 0.9  # the endpoint now reports a breach
    bad = wait_phase(sandbox, namespace, "web", "RolledBack", version="2", timeout=60)
    assert bad["stableRevision"] == v1
    t = trigger_status(bad, "queue")
    assert t["state"] == "Failing" and t["lastValue"] == 0.9, t
    assert "queue" in bad["history"][-1]["reason"]


TOKEN = "Bearer t0ken-e2e"


class Guarded(Metrics):
    """The same service behind a bearer token: without it, 401 and no number."""

    authorizations: list[str | None] = []

    def do_GET(self) -> None:
        type(self).authorizations.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != TOKEN:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def guarded() -> Iterator[tuple[str, type[Guarded]]]:
    handler = type("Handler", (Guarded,), {"value": 0.0, "paths": [], "authorizations": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


@pytest.fixture
def cluster_template(sandbox: Cluster, namespace: str) -> Iterator[str]:
    """A ClusterAnalysisTemplate named for this test's namespace (cluster-scoped: tests run in parallel)."""
    name = f"guarded-{namespace}"[:63]
    yield name
    sandbox.kubectl("delete", "clusteranalysistemplate", name, "--wait=false", check=False)


def test_a_web_provider_sends_a_secrets_headers_and_never_goes_without(
        sandbox: Cluster, namespace: str, operator: Operator, guarded: tuple[str, type[Guarded]],
        cluster_template: str) -> None:
    """A ClusterAnalysisTemplate's web trigger with `headersFrom`: the Secret is the Release's
    namespace's; while it is missing the Release is Degraded naming the field and the endpoint is
    never asked; once it is there every GET carries its token, and its value is in no status or Event."""
    url, handler = guarded
    grant_secrets(sandbox, namespace)
    sandbox.apply({"apiVersion": "glideslope.dev/v1alpha1", "kind": "ClusterAnalysisTemplate",
                   "metadata": {"name": cluster_template},
                   "spec": {"triggers": [{
                       "name": "queue", "severity": "critical", "failureCondition": "result > 0.5",
                       "provider": {"web": {
                           "url": url + "/status?release={{release}}",
                           "jsonPath": '$.data.checks[?(@.name == "queue")].value',
                           "headers": [{"name": "Authorization", "value": "Bearer not-this-one"}],
                           "headersFrom": {"name": "status-token", "keys": ["Authorization"]}}}}]}}, namespace)
    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"analysis": {"duration": "120s"}}]}}
    analysis = {"interval": "1s", "templates": [{"name": cluster_template, "kind": "ClusterAnalysisTemplate"}]}
    sandbox.apply(release("web", "1", steps), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    handler.value = 0.1
    sandbox.apply(release("web", "2", steps, analysis=analysis), namespace)

    field = "spec.analysis.triggers[0].provider.web.headersFrom"

    def unreadable() -> dict[str, Any] | None:
        condition = degraded(status(sandbox, namespace, "web"))
        return condition if condition.get("status") == "True" and condition.get("reason") == "SecretUnreadable" \
            and f"{field}: Secret {namespace}/status-token not found" in condition.get("message", "") else None

    wait_until(unreadable, timeout=30, what="Degraded SecretUnreadable naming the field")
    assert "SecretUnreadable" in events(sandbox, namespace)
    assert handler.authorizations == []  # never asked without the token
    assert trigger_status(status(sandbox, namespace, "web"), "queue").get("successes", 0) == 0

    # The Secret arrives in the Release's namespace, with its owner's consent: measured, with it.
    sandbox.apply({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "status-token", "labels": {"glideslope.dev/release-secret": "true"}},
                   "stringData": {"Authorization": TOKEN, "X-Not-Named": "kept"}}, namespace)

    def passing() -> dict[str, Any] | None:
        st = status(sandbox, namespace, "web")
        t = trigger_status(st, "queue")
        return st if t.get("state") == "Passing" and t.get("successes", 0) >= 2 else None

    st = wait_until(passing, timeout=60, what="the web trigger passing with the Secret's token")
    assert trigger_status(st, "queue")["lastValue"] == 0.1
    assert degraded(st).get("status") == "False", st["conditions"]
    assert handler.authorizations and set(handler.authorizations) == {TOKEN}, handler.authorizations

    handler.value = 0.9  # the endpoint now reports a breach: rolled back on the guarded number
    bad = wait_phase(sandbox, namespace, "web", "RolledBack", version="2", timeout=60)
    assert bad["stableRevision"] == v1 and trigger_status(bad, "queue")["lastValue"] == 0.9
    assert set(handler.authorizations) == {TOKEN}
    said = json.dumps(bad) + json.dumps(sandbox.get_json("events", "-n", namespace))
    assert "t0ken-e2e" not in said


def test_a_template_change_shows_in_the_next_rollout_not_the_running_one(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    def checks(condition: str) -> dict[str, Any]:
        return {"apiVersion": "glideslope.dev/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "checks"},
                "spec": {"triggers": [{
                    "name": "errors", "severity": "critical", "failureCondition": condition,
                    "query": 'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",'
                             'code="500"}[5s])) or vector(0)'}]}}

    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"analysis": {"duration": "10s"}}]}}
    uses = {"interval": "1s", "templates": [{"name": "checks"}]}
    sandbox.apply(checks("result > 0.5"), namespace)
    sandbox.apply(release("web", "1", steps, analysis=uses), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", steps, analysis=uses), namespace)

    def measuring() -> dict[str, Any] | None:
        st = status(sandbox, namespace, "web")
        return st if st.get("version") == "2" and trigger_status(st, "errors").get("successes", 0) >= 1 else None

    st = wait_until(measuring, timeout=60, what="v2 measured")
    kept = st["templateTriggers"]
    assert kept["revision"] == st["revision"] and kept["triggers"][0]["failureCondition"] == "result > 0.5", kept
    # Mid-rollout, the template changes to fail every measurement: the running rollout keeps
    # the triggers it started with, and succeeds.
    sandbox.apply(checks("result >= 0"), namespace)
    done = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)
    assert trigger_status(done, "errors")["failures"] == 0
    # The next rollout takes the template as it is now, and rolls back on it.
    sandbox.apply(release("web", "3", steps, analysis=uses), namespace)
    bad = wait_phase(sandbox, namespace, "web", "RolledBack", version="3", timeout=60)
    assert bad["templateTriggers"]["triggers"][0]["failureCondition"] == "result >= 0"
    assert "result >= 0" in bad["history"][-1]["reason"]


def test_a_templates_judge_rolls_back_a_worse_candidate(sandbox: Cluster, namespace: str,
                                                        operator: Operator) -> None:
    """An AnalysisTemplate holding only a judge, its metric named by an arg: the Release that
    names it is judged against a baseline, and its clearly worse candidate rolled back."""
    side = 'namespace="{{namespace}}",service="{{service}}",revision="{{sideRevision}}",role="{{sideRole}}"'
    query = (f'sum by (pod) (rate({{{{args.requests}}}}{{{side},code="500"}}[2s]))'
             f' / sum by (pod) (rate({{{{args.requests}}}}{{{side}}}[2s]))')
    sandbox.apply({"apiVersion": "glideslope.dev/v1alpha1", "kind": "AnalysisTemplate",
                   "metadata": {"name": "judged"},
                   "spec": {"args": [{"name": "requests"}], "judge": {
                       "baseline": True, "minSamples": 8, "step": "2s",
                       "metrics": [{"name": "errors", "query": query, "direction": "increase",
                                    "tolerance": 0.01}]}}}, namespace)
    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "10s"}}]}}
    analysis = {"interval": "2s", "initialDelay": "2s", "templates": [
        {"name": "judged", "kind": "AnalysisTemplate", "args": {"requests": "http_requests_total"}}]}

    def noisy(version: str, error_rate: float) -> dict[str, Any]:
        body = release("web", version, steps, error_rate=error_rate, analysis=analysis)
        body["spec"]["template"]["metadata"]["annotations"]["sim.glideslope.dev/noise"] = "true"
        return body

    sandbox.apply(noisy("1", 0.02), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(noisy("2", 0.3), namespace)
    rolled = wait_phase(sandbox, namespace, "web", "RolledBack", version="2", timeout=120)
    assert rolled["stableRevision"] == v1 and "judge: Fail" in rolled["history"][-1]["reason"], rolled["history"]
    assert rolled["judge"]["verdict"] == "Fail", rolled["judge"]
    kept = rolled["templateTriggers"]["judge"]["metrics"][0]["query"]
    assert "rate(http_requests_total{" in kept and "{{args." not in kept  # the arg substituted, recorded
