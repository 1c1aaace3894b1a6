"""Every line is JSON with the Release's identity, including lines from the standard library."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from glideslope.logs import bind_release, bind_rollout, configure, get_logger, reset

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    reset()


def test_json_lines_carry_the_release() -> None:
    out = io.StringIO()
    configure(json=True, stream=out)
    bind_release("shop", "checkout", revision="7f9c2d1a4b", step=3)
    get_logger().info("step done", weight=20)
    logging.getLogger("kopf.objects").warning("a kopf line")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "step done" and lines[0]["weight"] == 20
    for line in lines:
        assert (line["namespace"], line["release"], line["revision"], line["step"]) == (
            "shop", "checkout", "7f9c2d1a4b", 3)
        assert "timestamp" in line and "level" in line
    assert lines[1]["logger"] == "kopf.objects" and lines[1]["level"] == "warning"


def test_what_is_not_known_yet_is_left_out_not_null() -> None:
    out = io.StringIO()
    configure(json=True, stream=out)
    bind_release("shop", "checkout")
    get_logger().info("read")
    bind_rollout("7f9c2d1a4b", 2)
    get_logger().info("stepped")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert "revision" not in first and "step" not in first and first["release"] == "checkout"
    assert (second["revision"], second["step"]) == ("7f9c2d1a4b", 2)


def test_console_format_when_asked() -> None:
    out = io.StringIO()
    configure(json=False, stream=out)
    get_logger().info("hello", release="checkout")
    text = out.getvalue()
    assert "hello" in text and "checkout" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
