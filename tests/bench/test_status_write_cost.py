"""What one status write of a Release costs the API server, and how much of it is the CRD's CEL.

The operator writes a Release's status at every step and measurement that changes something; at
scale these writes are most of what it asks of the API server. This benchmark PATCHes the status
subresource of one Release (a canary with gates of every kind, triggers and notifications) N times under
several versions of the CRD, installed in turn on the sandbox's API server, and reads for each:

- the kube-apiserver's CPU seconds per PATCH (from /proc of its process: the sandbox runs it);
- the time it spent evaluating CEL rules per PATCH (its own `apiserver_cel_evaluation_duration_seconds`);

for the CRD as shipped, without the rules on `spec`, and without any rule. The variants run in
turn, `GLIDESLOPE_STATUS_WRITE_ROUNDS` rounds (default 3), so that the machine's noise falls on
each. Prints a table and writes results/status_write_cost.json; asserts no time. The CRD as
shipped is put back at the end.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from glideslope.api.crd import render_crd
from tests.bench.test_scale import GROUP, PLURAL, VERSION
from tests.e2e.helpers import Cluster
from tests.e2e.invalid import base

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
PATCHES = int(os.environ.get("GLIDESLOPE_STATUS_WRITES", "1000"))
ROUNDS = int(os.environ.get("GLIDESLOPE_STATUS_WRITE_ROUNDS", "3"))
RULES = "x-kubernetes-validations"


def _without_rules(node: Any) -> None:
    if isinstance(node, dict):
        node.pop(RULES, None)
        for value in node.values():
            _without_rules(value)
    elif isinstance(node, list):
        for value in node:
            _without_rules(value)


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _no_spec_rules(crd: dict[str, Any]) -> None:
    _without_rules(_schema(crd)["properties"]["spec"])


VARIANTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as shipped": lambda crd: None,
    "without the rules on spec": _no_spec_rules,
    "without any rule": lambda crd: _without_rules(_schema(crd)),
}


def _apiserver_pid() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"kube-apiserver"):
                return int(entry.name)
    raise AssertionError("no kube-apiserver process on this machine: this benchmark needs the sandbox's")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cel_seconds(sandbox: Cluster) -> float:
    for line in sandbox.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_cel_evaluation_duration_seconds_sum"):
            return float(line.split()[-1])
    return 0.0


def _install(sandbox: Cluster, crd: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(crd))
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=glideslope-sandbox",
                    "-f", str(path))
    sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(path))
    time.sleep(2)  # the API server swaps its handler for the CRD's new version asynchronously


@pytest.fixture
def shipped_crd(sandbox: Cluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    crd = render_crd()
    try:
        yield crd
    finally:
        _install(sandbox, crd, tmp_path / "shipped.yaml")


@pytest.mark.timeout(1800)
def test_status_write_cost(sandbox: Cluster, namespace: str, shipped_crd: dict[str, Any], tmp_path: Path) -> None:
    pid = _apiserver_pid()
    custom = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(
        config_file=str(sandbox.kubeconfig)))
    body = base()  # a canary with gates of each kind, triggers and notifications
    name = body["metadata"]["name"]
    trigger = body["spec"]["analysis"]["triggers"][0]["name"]
    status: dict[str, Any] = {"phase": "Progressing", "currentStep": 1, "message": "canary at 25%",
                              "analysis": [{"name": trigger, "state": "Passing", "successes": 0}]}
    figures: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for _ in range(ROUNDS):
        for variant, change in VARIANTS.items():
            crd = copy.deepcopy(shipped_crd)
            change(crd)
            _install(sandbox, crd, tmp_path / f"{uuid.uuid4().hex[:6]}.yaml")
            sandbox.kubectl("delete", "release", name, "-n", namespace, "--ignore-not-found", "--wait=true")
            sandbox.apply(body, namespace)
            patch = ["patch", "release", name, "-n", namespace, "--subresource=status", "--type=merge", "-p"]
            sandbox.kubectl(*patch, json.dumps({"status": status}))
            cpu, cel, started = _cpu_seconds(pid), _cel_seconds(sandbox), time.monotonic()
            for i in range(PATCHES):
                status["analysis"][0]["successes"] = i + 1
                custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                             {"status": status})
            wall = time.monotonic() - started
            figures[variant].append({
                "apiserver_cpu_ms_per_patch": round((_cpu_seconds(pid) - cpu) / PATCHES * 1000, 3),
                "cel_evaluation_ms_per_patch": round((_cel_seconds(sandbox) - cel) / PATCHES * 1000, 3),
                "wall_ms_per_patch": round(wall / PATCHES * 1000, 2),
            })
            print(f"{variant}: {figures[variant][-1]}", flush=True)
    summary = {variant: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
               for variant, runs in figures.items()}
    result = {
        "benchmark": "status_write_cost",
        "scenario": f"{PATCHES} merge PATCHes of one Release's status subresource (one counter changed each), "
                    f"per CRD variant, {ROUNDS} rounds of the variants in turn; medians of the rounds",
        "patches": PATCHES, "rounds": ROUNDS, "median": summary, "runs": figures,
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "status_write_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'CRD':<28}{'API server CPU ms/PATCH':>26}{'CEL ms/PATCH':>16}{'wall ms/PATCH':>16}")
    for variant, row in summary.items():
        print(f"{variant:<28}{row['apiserver_cpu_ms_per_patch']:>26}{row['cel_evaluation_ms_per_patch']:>16}"
              f"{row['wall_ms_per_patch']:>16}")
    assert all(len(runs) == ROUNDS for runs in figures.values())
