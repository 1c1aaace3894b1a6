"""Generated files are checked in; each must match its one source."""

from __future__ import annotations

from pathlib import Path

import pytest

from glideslope.api.crd import render_crd_yaml
from glideslope.sandbox.manifests import DEPLOY, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_chart_carries_the_current_crd() -> None:
    chart_copy = REPO / "charts" / "glideslope" / "crds" / "glideslope.dev_releases.yaml"
    assert chart_copy.read_text() == render_crd_yaml(), "the chart's CRD is stale: run `make crds`"


def test_deploy_is_rendered_from_the_chart() -> None:
    # helm comes from the cache `make binaries` fills (built once from the Go module proxy).
    for name, text in render().items():
        assert (DEPLOY / name).read_text() == text, f"deploy/{name} is stale: run `make manifests`"
