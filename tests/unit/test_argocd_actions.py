"""Argo CD's resource actions for Releases (deploy/gitops/argocd-actions.yaml), run by a real Lua
interpreter: each sets the command annotation `kubectl release` sets, and only when it applies."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.core.model import ABORT, COMMANDS, PAUSE, PROMOTE, RESTART, RESUME, RETRY
from tests.unit.test_argocd_health import lua_literal, release

pytestmark = pytest.mark.unit

PATCH = Path(__file__).resolve().parents[2] / "deploy" / "gitops" / "argocd-actions.yaml"
CUSTOMIZATION = yaml.safe_load(yaml.safe_load(PATCH.read_text())["data"][
    "resource.customizations.actions.glideslope.dev_Release"])
ACTIONS = {d["name"]: d["action.lua"] for d in CUSTOMIZATION["definitions"]}


def run_lua(obj: dict[str, Any], script: str, then: str) -> list[str]:
    lua = shutil.which("lua5.4") or shutil.which("lua")
    assert lua, "lua is missing: `make system-deps` installs Debian's lua5.4"
    program = f"obj = {lua_literal(obj)}\nlocal out = (function() {script} end)()\n{then}"
    return subprocess.run([lua, "-"], input=program, capture_output=True, text=True, check=True).stdout.split()


def enabled(obj: dict[str, Any]) -> set[str]:
    lines = run_lua(obj, CUSTOMIZATION["discovery.lua"],
                    "for name, a in pairs(out) do if not a.disabled then print(name) end end")
    return set(lines)


def annotated(obj: dict[str, Any], action: str) -> dict[str, str]:
    lines = run_lua(obj, ACTIONS[action], "for k, v in pairs(out.metadata.annotations) do "
                                          "print(k .. '=' .. v:gsub(' ', '_')) end")
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize(("status", "expected"), [
    ({}, set()),
    ({"phase": "Succeeded", "stableRevision": "abc"}, {"restart"}),
    ({"phase": "Progressing"}, {"promote", "promote-full", "abort", "pause", "restart"}),
    ({"phase": "Paused", "pausedBy": "CAB review"}, {"promote", "promote-full", "abort", "resume", "restart"}),
    ({"phase": "Validating"}, {"promote", "promote-full", "abort", "pause", "restart"}),
    ({"phase": "RolledBack", "stableRevision": "abc"}, {"retry", "restart"}),
    ({"phase": "Failed"}, {"retry"}),
])
def test_actions_are_offered_only_when_they_apply(status: dict[str, Any], expected: set[str]) -> None:
    assert enabled(release(observedGeneration=2, **status) if status else release()) == expected


@pytest.mark.parametrize(("action", "key", "value"), [
    ("promote", PROMOTE, "step"), ("promote-full", PROMOTE, "full"), ("abort", ABORT, "aborted_from_Argo_CD"),
    ("retry", RETRY, "from_Argo_CD"), ("pause", PAUSE, "paused_from_Argo_CD"), ("resume", RESUME, "from_Argo_CD"),
])
def test_each_action_sets_its_command(action: str, key: str, value: str) -> None:
    bare = release()  # no annotations at all
    assert annotated(bare, action) == {key: value}
    kept = {**release(), "metadata": {"name": "checkout", "annotations": {"team": "shop"}}}
    assert annotated(kept, action) == {key: value, "team": "shop"}


def test_restart_sets_the_time_so_each_run_is_a_new_restart() -> None:
    value = annotated(release(), "restart")[RESTART]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), value


def test_every_action_is_a_command_the_operator_obeys() -> None:
    assert set(ACTIONS) == {"promote", "promote-full", "abort", "retry", "pause", "resume", "restart"}
    for script in ACTIONS.values():
        assert any(f'"{command}"' in script for command in COMMANDS)
