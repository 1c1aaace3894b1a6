"""The benchmark's anchors: scratch go.mod text, cache folder naming, and no rebuild when cached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glideslope.sandbox import anchors as anchors_mod
from glideslope.sandbox.anchors import (
    ANCHOR_BINARIES,
    ARGO_ROLLOUTS_MANIFESTS,
    FLAGGER_MANIFESTS,
    Anchors,
    anchors_dir,
    ensure_anchors,
    go_directive,
    replace_lines,
    scratch_go_mod,
    tools_go,
)

pytestmark = pytest.mark.unit

SAMPLE_GO_MOD = """module example.com/anchor

go 1.26.10

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0 // indirect
)

replace (
\tgithub.com/go-check/check => github.com/go-check/check v0.0.0-20180628173108-788fd7840127
\tgithub.com/old/bot/v5 => github.com/new/bot/v5 v5.0.0-20240108230938-63e5c59035bf // a fork
\tk8s.io/api => k8s.io/api v0.34.5

\tk8s.io/client-go   =>   k8s.io/client-go v0.34.5
)

replace example.com/pinned v1.0.0 => example.com/pinned v1.0.1
"""


def test_replace_lines_reads_blocks_and_single_lines_in_order() -> None:
    assert replace_lines(SAMPLE_GO_MOD) == [
        "github.com/go-check/check => github.com/go-check/check v0.0.0-20180628173108-788fd7840127",
        "github.com/old/bot/v5 => github.com/new/bot/v5 v5.0.0-20240108230938-63e5c59035bf",
        "k8s.io/api => k8s.io/api v0.34.5",
        "k8s.io/client-go => k8s.io/client-go v0.34.5",
        "example.com/pinned v1.0.0 => example.com/pinned v1.0.1",
    ]


def test_replace_to_a_local_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="local folder"):
        replace_lines("module m\n\ngo 1.22\n\nreplace k8s.io/api => ./staging/src/k8s.io/api\n")


def test_scratch_go_mod_repeats_the_anchors_go_directive_and_replaces() -> None:
    text = scratch_go_mod("argo-rollouts", {"github.com/argoproj/argo-rollouts": "v1.10.2"}, SAMPLE_GO_MOD)
    lines = text.splitlines()
    assert lines[0] == "module glideslope.local/anchors/argo-rollouts"
    assert "go 1.26.10" in lines
    assert "\tgithub.com/argoproj/argo-rollouts v1.10.2" in lines
    start = lines.index("replace (")
    assert lines[start + 1:start + 6] == [f"\t{r}" for r in replace_lines(SAMPLE_GO_MOD)]
    assert lines[start + 6] == ")"
    assert text.endswith(")\n")
    assert go_directive(text) == "1.26.10"


def test_scratch_go_mod_without_replaces_has_no_replace_block() -> None:
    text = scratch_go_mod("flagger", {"github.com/fluxcd/flagger": "v1.36.1"},
                          "module github.com/fluxcd/flagger\n\ngo 1.21\n\nrequire x.io/y v1.0.0\n")
    assert "replace" not in text
    assert "go 1.21" in text.splitlines()


def test_a_go_mod_without_go_directive_is_refused() -> None:
    with pytest.raises(ValueError, match="go directive"):
        go_directive("module m\n")


def test_tools_go_pins_the_commands_without_being_compiled() -> None:
    text = tools_go(["github.com/fluxcd/flagger/cmd/flagger"])
    assert text.startswith("//go:build tools\n")
    assert '\t_ "github.com/fluxcd/flagger/cmd/flagger"' in text


def test_cache_folder_names_both_versions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLIDESLOPE_CACHE", str(tmp_path))
    folder = anchors_dir()
    assert folder.parent == tmp_path / "bin"
    assert folder.name == (f"anchors-argo-{anchors_mod.ARGO_ROLLOUTS_VERSION}"
                           f"_flagger-{anchors_mod.FLAGGER_VERSION}")
    assert folder.name.startswith("anchors-argo-v1.10.")


def _fill(folder: Path) -> None:
    for name in ANCHOR_BINARIES:
        binary = folder / name
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    for source, dest in (*ARGO_ROLLOUTS_MANIFESTS, *FLAGGER_MANIFESTS):
        target = folder / dest / Path(source).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("kind: Thing\n")


def test_a_full_folder_is_returned_without_building(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLIDESLOPE_CACHE", str(tmp_path))

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing should be built or downloaded")

    monkeypatch.setattr(anchors_mod, "_run", no_build)
    monkeypatch.setattr(anchors_mod, "module_dir", no_build)
    _fill(anchors_dir())
    got = ensure_anchors()
    assert got.folder == anchors_dir()
    assert got.missing_binaries() == [] and got.missing_manifests() == []
    assert os.access(got.rollouts_controller, os.X_OK) and os.access(got.flagger, os.X_OK)
    assert [p.name for p in got.argo_rollouts_crds] == sorted(
        Path(s).name for s, d in ARGO_ROLLOUTS_MANIFESTS if d.endswith("/crds"))
    assert {p.name for p in got.argo_rollouts_rbac} == {
        "argo-rollouts-sa.yaml", "argo-rollouts-clusterrole.yaml", "argo-rollouts-clusterrolebinding.yaml"}
    assert [p.name for p in got.flagger_crds] == ["crd.yaml"]
    assert [p.name for p in got.flagger_rbac] == ["account.yaml", "rbac.yaml"]


def test_an_empty_folder_reports_what_is_missing(tmp_path: Path) -> None:
    empty = Anchors(tmp_path)
    assert empty.missing_binaries() == list(ANCHOR_BINARIES)
    assert len(empty.missing_manifests()) == len(ARGO_ROLLOUTS_MANIFESTS) + len(FLAGGER_MANIFESTS)
