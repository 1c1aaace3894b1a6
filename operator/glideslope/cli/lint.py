"""`kubectl release lint FILE...`: a Release (or an AnalysisTemplate or ClusterAnalysisTemplate)
checked offline, before it is applied, as the operator would check it: the models (types,
bounds, enums, the field names the API server uses) and the rules the operator applies before
it acts (`core.spec_validation`: conditions compiled with the same CEL checks, durations, time
zones, names; `core.templates` for a template's args). A pipeline runs it on a pull request;
what it cannot know offline (a Secret, another Release, a template a Release names, the CRD's
rules on `metadata.name`) the API server and the operator still say at apply time.
"""

from __future__ import annotations

import sys
import zoneinfo
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from glideslope.api import GROUP, KIND, field_problems, parse_release
from glideslope.api.templates import parse_template
from glideslope.api.types import TemplateKind
from glideslope.core.spec_validation import validate_spec
from glideslope.core.templates import template_problems
from glideslope.prom.web import json_path_problems

_KINDS = {KIND: "release", **{k.value: k.value for k in TemplateKind}}
"""The kinds linted, and how each is named in what lint says."""


def _documents(path: str) -> Iterator[tuple[int, Any]]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    for index, doc in enumerate(yaml.safe_load_all(text)):
        if doc is None:
            continue
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else None
        for item in items if isinstance(items, list) else [doc]:
            yield index, item


def _kind(doc: Any) -> str | None:
    """How lint names the document's kind, or None: not one it lints."""
    if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
        return _KINDS.get(str(doc.get("kind")))
    return None


def lint_template(doc: dict[str, Any]) -> list[str]:
    """Every problem found in one AnalysisTemplate or ClusterAnalysisTemplate, each naming its
    field (what depends on the Release using it, such as its args' values, is said then)."""
    try:
        spec = parse_template(doc).spec
    except ValidationError as exc:
        return field_problems(exc)
    return template_problems(spec) + json_path_problems(spec.triggers, "spec.triggers")


def lint(doc: dict[str, Any]) -> list[str]:
    """Every problem found in one Release manifest, each naming its field."""
    try:
        release = parse_release(doc)
    except ValidationError as exc:
        return field_problems(exc)
    return [str(e) for e in validate_spec(release.spec, zoneinfo.available_timezones())]


def run(paths: Sequence[str], say: Any) -> int:
    """Lint every Release and analysis template in `paths` (`-`: standard input); `say` prints a line. Exit code: 0 when
    all are valid, 1 when one is not, 2 when a file cannot be read or parsed, or holds none."""
    found = failed = 0
    for path in paths:
        try:
            documents = list(_documents(path))
        except (OSError, yaml.YAMLError) as exc:
            say(f"{path}: cannot read it: {exc}")
            return 2
        for index, doc in documents:
            kind = _kind(doc)
            if kind is None:
                continue
            found += 1
            name = (doc.get("metadata") or {}).get("name") or f"document {index + 1}"
            problems = lint(doc) if kind == "release" else lint_template(doc)
            failed += bool(problems)
            for problem in problems:
                say(f"{path}: {kind} {name}: {problem}")
            if not problems:
                say(f"{path}: {kind} {name}: valid")
    if not found:
        say(f"no Release or analysis template ({GROUP}) in {', '.join(paths)}")
        return 2
    return 1 if failed else 0
