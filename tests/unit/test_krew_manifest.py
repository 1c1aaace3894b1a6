"""plugins/release.yaml is a krew Plugin manifest for this version, and `make krew` fills it in
without touching anything else."""

from __future__ import annotations

import re

import pytest
import yaml

from glideslope.sandbox import krew

pytestmark = pytest.mark.unit


def test_the_manifest_is_a_krew_plugin_of_this_version() -> None:
    plugin = yaml.safe_load(krew.MANIFEST.read_text())
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2" and plugin["kind"] == "Plugin"
    assert plugin["metadata"]["name"] == "release"  # the name after `kubectl`
    spec = plugin["spec"]
    assert spec["version"] == f"v{krew.version()}"
    assert len(spec["shortDescription"]) <= 50 and spec["description"] and "python3" in spec["caveats"]
    for platform in spec["platforms"]:
        assert platform["bin"] == krew.LAUNCHER.name
        assert platform["uri"].endswith(f"/{spec['version']}/kubectl-release-{spec['version']}.tar.gz")
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["selector"]["matchExpressions"][0]["values"] == ["linux", "darwin"]


def test_make_krew_changes_only_the_sha256_and_the_version() -> None:
    text = krew.MANIFEST.read_text()
    updated = krew.manifest("ab" * 32, text)
    changed = [(a, b) for a, b in zip(text.splitlines(), updated.splitlines(), strict=True) if a != b]
    assert all("sha256" in a for a, _ in changed) and updated == krew.manifest("ab" * 32, updated)
    assert f"sha256: {'ab' * 32}" in updated
