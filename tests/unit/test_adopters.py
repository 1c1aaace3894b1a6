"""The index from an adopted Deployment to the Releases adopting it (`handlers.Adopters`): a new
pod template wakes them, the operator's own replicas writes do not."""

from __future__ import annotations

import pytest

from glideslope.handlers import Adopters

pytestmark = pytest.mark.unit


def test_a_new_template_wakes_the_adopting_releases_and_nothing_else_does() -> None:
    index = Adopters()
    assert index.changed("shop", "web", "t1") == []  # adopted by no Release: nobody to wake
    assert not index.adopted("shop", "web")
    index.set(("shop", "web-release"), "web")
    assert index.adopted("shop", "web") and not index.adopted("shop", "api")
    index.set(("other", "web-release"), "web")
    assert index.changed("shop", "web", "t1") == [("shop", "web-release")]  # first seen
    assert index.changed("shop", "web", "t1") == []  # replicas scaled: same template
    assert index.changed("shop", "web", "t2") == [("shop", "web-release")]
    assert index.changed("shop", "api", "t2") == []
    assert index.changed("shop", "web", None) == [("shop", "web-release")]  # deleted
    assert index.changed("shop", "web", "t2") == [("shop", "web-release")]  # created again
    index.set(("shop", "web-release"), None)  # the Release is gone, or adopts nothing
    assert index.changed("shop", "web", "t3") == []
