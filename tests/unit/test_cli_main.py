"""`glideslope` without the sandbox, as in the operator's image (the Dockerfile leaves it out)."""

from __future__ import annotations

import sys

import pytest

from glideslope.cli.main import _no_sandbox, main, parser

pytestmark = pytest.mark.unit


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import` raise ModuleNotFoundError, as an absent package does.
    for name in ("glideslope.sandbox", "glideslope.sandbox.cluster", "glideslope.sandbox.build",
                 "glideslope.sandbox.anchors"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("argv", [["sandbox", "up"], ["build"], ["build", "--anchors"]])
def test_a_sandbox_command_says_the_sandbox_is_not_installed(no_sandbox: None, argv: list[str],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "the sandbox is a developer tool and is not installed here" in err
    assert "pip install -e ." in err


def test_help_and_the_operators_flags_need_no_sandbox(no_sandbox: None) -> None:
    args = parser().parse_args(["operator", "--all-namespaces"])
    assert args.all_namespaces
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["--help"])
    assert exited.value.code == 0


def test_another_missing_module_is_raised_as_it_is() -> None:
    error = ModuleNotFoundError("No module named 'yaml'", name="yaml")
    with pytest.raises(ModuleNotFoundError) as raised:
        _no_sandbox("sandbox", error)
    assert raised.value is error
