"""The Argo CD health check, run by a real Lua interpreter against Release objects."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "gitops" / "argocd-health.lua"


def lua_literal(value: Any) -> str:
    """A Lua table constructor for JSON-like data (what Argo CD hands the script as `obj`)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    return json.dumps(value)


def health(obj: dict[str, Any]) -> tuple[str, str | None]:
    lua = shutil.which("lua5.4") or shutil.which("lua")
    assert lua, "lua is missing: `make system-deps` installs Debian's lua5.4"
    program = (f"obj = {lua_literal(obj)}\n"
               f"local hs = (function() {SCRIPT.read_text()} end)()\n"
               "print(hs.status) print(hs.message or '')")
    out = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, check=True).stdout
    status, message = out.split("\n", 1)
    return status, message.strip() or None


def release(generation: int = 2, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "checkout", "generation": generation}}
    if status:
        body["status"] = status
    return body


@pytest.mark.parametrize(("obj", "expected"), [
    (release(), "Progressing"),
    (release(observedGeneration=1, phase="Succeeded"), "Progressing"),
    (release(observedGeneration=2, phase="Succeeded", message="2.5.0 is stable"), "Healthy"),
    (release(observedGeneration=2, phase="Progressing"), "Progressing"),
    (release(observedGeneration=2, phase="Validating"), "Progressing"),
    (release(observedGeneration=2, phase="Paused"), "Suspended"),
    (release(observedGeneration=2, phase="Gated"), "Suspended"),
    (release(observedGeneration=2, phase="RolledBack"), "Degraded"),
    (release(observedGeneration=2, phase="Failed"), "Degraded"),
    (release(observedGeneration=2, phase="Succeeded", conditions=[
        {"type": "Degraded", "status": "True", "reason": "InvalidSpec", "message": "invalid spec: x"}]), "Degraded"),
])
def test_health(obj: dict[str, Any], expected: str) -> None:
    assert health(obj)[0] == expected


def test_message_comes_from_status() -> None:
    assert health(release(observedGeneration=2, phase="Succeeded", message="2.5.0 is stable")) == (
        "Healthy", "2.5.0 is stable")
