"""Render `deploy/` from the Helm chart, so the chart is the one source of the RBAC and the
operator Deployment, and `kubectl apply -k deploy/` installs exactly what `helm install` does.

`python -m glideslope.sandbox.manifests` rewrites the files; `--check` fails when they are stale.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from glideslope.sandbox.build import ensure_helm

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "glideslope"
DEPLOY = REPO_ROOT / "deploy"
NAMESPACE = "glideslope-system"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
ADMISSION_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
TEMPLATE_KINDS = {"ClusterAnalysisTemplate", "AnalysisTemplate"}
ANALYSIS_TEMPLATES = "analysis-templates.yaml"
"""The chart's ClusterAnalysisTemplates in deploy/ (`error-rate`, `latency-p95`)."""
ADMISSION_POLICY = "admission-policy.yaml"
"""The approval policy's file in deploy/; `glideslope sandbox up` applies it after the CRDs."""
# Labels that say Helm manages an object: wrong for objects applied with kustomize.
HELM_LABELS = ("app.kubernetes.io/managed-by", "helm.sh/chart")
HEADER = "# Generated from charts/glideslope by `make manifests`: edit the chart, not this file.\n"


def _file_for(kind: str) -> str:
    if kind in RBAC_KINDS:
        return "rbac.yaml"
    if kind in ADMISSION_KINDS:
        return ADMISSION_POLICY
    if kind in TEMPLATE_KINDS:
        return ANALYSIS_TEMPLATES
    return "operator.yaml"


def render(helm: Path | None = None) -> dict[str, str]:
    """The text of each generated file in deploy/, by file name."""
    out = subprocess.run(
        # The `helm test` hook is Helm's; `kubectl apply -k` has no use for it.
        [str(helm or ensure_helm()), "template", "glideslope", str(CHART), "--namespace", NAMESPACE, "--skip-tests"],
        check=True, capture_output=True, text=True,
    ).stdout
    files: dict[str, list[dict[str, Any]]] = {"rbac.yaml": [], ADMISSION_POLICY: [], ANALYSIS_TEMPLATES: [],
                                              "operator.yaml": []}
    for doc in yaml.safe_load_all(out):
        if not doc:
            continue
        labels = doc.get("metadata", {}).get("labels", {})
        for key in HELM_LABELS:
            labels.pop(key, None)
        files[_file_for(doc["kind"])].append(doc)
    return {name: HEADER + yaml.safe_dump_all(docs, sort_keys=False) for name, docs in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if deploy/ differs from the chart")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = DEPLOY / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"deploy/ is stale ({', '.join(stale)}): run `make manifests`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
