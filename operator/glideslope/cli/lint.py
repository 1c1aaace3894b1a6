"""`kubectl release lint FILE...`: a Release checked offline, before it is applied, as the operator
would check it: the models (types, bounds, enums, the field names the API server uses) and the
rules the operator applies before it acts (`core.spec_validation`: conditions compiled with the
same CEL checks, durations, time zones, names). A pipeline runs it on a pull request; what it
cannot know offline (a Secret, another Release, the CRD's rules on `metadata.name`) the API
server and the operator still say at apply time.
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
from glideslope.core.spec_validation import validate_spec


def _documents(path: str) -> Iterator[tuple[int, Any]]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    for index, doc in enumerate(yaml.safe_load_all(text)):
        if doc is None:
            continue
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else None
        for item in items if isinstance(items, list) else [doc]:
            yield index, item


def _is_release(doc: Any) -> bool:
    return (isinstance(doc, dict) and doc.get("kind") == KIND
            and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"))


def lint(doc: dict[str, Any]) -> list[str]:
    """Every problem found in one Release manifest, each naming its field."""
    try:
        release = parse_release(doc)
    except ValidationError as exc:
        return field_problems(exc)
    return [str(e) for e in validate_spec(release.spec, zoneinfo.available_timezones())]


def run(paths: Sequence[str], say: Any) -> int:
    """Lint every Release in `paths` (`-`: standard input); `say` prints a line. Exit code: 0 when
    all are valid, 1 when one is not, 2 when a file cannot be read or parsed, or holds none."""
    found = failed = 0
    for path in paths:
        try:
            documents = list(_documents(path))
        except (OSError, yaml.YAMLError) as exc:
            say(f"{path}: cannot read it: {exc}")
            return 2
        for index, doc in documents:
            if not _is_release(doc):
                continue
            found += 1
            name = (doc.get("metadata") or {}).get("name") or f"document {index + 1}"
            problems = lint(doc)
            failed += bool(problems)
            for problem in problems:
                say(f"{path}: release {name}: {problem}")
            if not problems:
                say(f"{path}: release {name}: valid")
    if not found:
        say(f"no Release ({GROUP}) in {', '.join(paths)}")
        return 2
    return 1 if failed else 0
