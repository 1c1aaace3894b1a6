"""`kubectl_complete-release`: what kubectl's completion gets for each kind of word."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from glideslope.cli.completion import FILES, NO_FILES, complete

pytestmark = pytest.mark.unit

SEEN: list[Sequence[str]] = []


def names(words: Sequence[str]) -> list[str]:
    SEEN.append(list(words))
    return ["cart", "checkout", "search"]


def test_commands_flags_values_and_names() -> None:
    assert complete([""], names)[-1] == NO_FILES
    assert {"status", "history", "lint", "set", "approve"} <= set(complete([""], names))
    assert complete(["st"], names) == ["status", NO_FILES]
    assert complete(["status", "ch"], names) == ["checkout", NO_FILES]
    assert complete(["-n", "shop", "status", ""], names) == ["cart", "checkout", "search", NO_FILES]
    assert SEEN[-1] == ["-n", "shop", "status"]  # the namespace typed reaches the lookup
    assert complete(["history", "-o", ""], names) == ["json", "yaml", NO_FILES]
    assert "--timeout" in complete(["status", "--t"], names)
    assert complete(["set", ""], names) == ["image", NO_FILES]
    assert complete(["set", "image", "c"], names) == ["cart", "checkout", NO_FILES]
    # A name given: nothing more to offer; lint takes files; a flag's value may be a path.
    assert complete(["status", "checkout", ""], names) == [NO_FILES]
    assert complete(["lint", ""], names) == [FILES]
    assert complete(["--kubeconfig", ""], names) == [FILES]
