"""docs/api.md is generated and current; what it and ARCHITECTURE.md cite exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from glideslope.api import Severity
from glideslope.api.crd import openapi_schema
from glideslope.api.types import SEVERITY_EFFECTS
from glideslope.cli import docs
from glideslope.cli.main import parser
from glideslope.core.analysis import TEMPLATE_VARIABLE_MEANINGS
from glideslope.core.model import APPROVED_BY, COMMAND_EFFECTS, COMMANDS

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
API_DOC = REPO / "docs" / "api.md"
CITING = (REPO / "ARCHITECTURE.md", API_DOC)

# What a cited path may begin with: the repository's top-level entries. Anything else in
# backticks (an annotation key like `glideslope.dev/approve`, a URL) is not a path.
_TOP = ("operator/", "tests/", "crds/", "charts/", "deploy/", "examples/", "docs/", ".ci/")
_ROOT_FILES = ("Makefile", "Dockerfile", "README.md", "ARCHITECTURE.md", "pyproject.toml", "constraints.txt",
               ".importlinter", ".dockerignore")


def test_checked_in_api_docs_are_up_to_date() -> None:
    assert API_DOC.is_file(), "docs/api.md is missing: run `make docs`"
    assert API_DOC.read_text() == docs.render(), "docs/api.md is stale: run `make docs`"


def test_the_cli_prints_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["docs"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == docs.render()


def test_every_field_of_spec_and_status_has_a_row() -> None:
    text = docs.render()
    schema = openapi_schema()
    paths = [path for root in ("spec", "status") for path, _, _ in docs.fields(schema["properties"][root], root)]
    assert "spec.strategy.canary.steps[].setWeight" in paths
    missing = [p for p in paths if f"| `{p}` |" not in text]
    assert not missing


def test_every_command_severity_and_variable_is_described_once_in_code() -> None:
    assert set(COMMAND_EFFECTS) == {*COMMANDS, APPROVED_BY}
    assert set(SEVERITY_EFFECTS) == set(Severity)
    assert "stableRevision" in TEMPLATE_VARIABLE_MEANINGS
    rows = docs.command_rows()
    assert [r[0].strip("`") for r in rows if r[0].strip("`") != APPROVED_BY] == list(COMMANDS)


def _tokens(text: str) -> list[str]:
    return re.findall(r"`([^`\s]+)`", text) + re.findall(r"\]\(([^)\s#]+)[^)]*\)", text)


def _cited(text: str) -> list[str]:
    """Paths in backticks or link targets that name something in the repository."""
    return [t for t in _tokens(text) if t.startswith(_TOP) or t.split("::")[0] in _ROOT_FILES]


def _bare_files(text: str) -> list[str]:
    """File names cited without their folder (`canary.py` after `.../strategies/canary.py`)."""
    return [t for t in _tokens(text) if re.fullmatch(r"[\w.-]+\.(py|md|yaml|yml|json|lua|toml)", t)
            and t not in _ROOT_FILES]


@pytest.mark.parametrize("doc", CITING, ids=lambda p: p.name)
def test_every_cited_path_exists(doc: Path) -> None:
    cited = _cited(doc.read_text())
    assert cited, f"{doc.name} cites no path: the pattern is wrong"
    problems = []
    for token in cited:
        path, *names = token.split("::")
        target = REPO / path
        if not target.exists():
            problems.append(f"{token}: no such path")
        elif names and not re.search(rf"^\s*(async )?(def|class) {re.escape(names[-1])}\b",
                                     target.read_text(), re.MULTILINE):
            problems.append(f"{token}: {path} has no {names[-1]}")
    names = {f.name for top in _TOP for f in (REPO / top).rglob("*") if f.is_file()}
    problems += [f"{name}: no file of that name" for name in _bare_files(doc.read_text()) if name not in names]
    assert not problems, f"{doc.name} cites what does not exist:\n" + "\n".join(problems)
