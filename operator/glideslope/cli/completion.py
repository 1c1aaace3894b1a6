"""Shell completion for `kubectl release`, as kubectl (1.26 and later) asks a plugin for it: it
runs `kubectl_complete-release` with the words typed after `kubectl release`, the last one being
the word to complete (empty for a new word), and reads one candidate per line, then an optional
`:<directive>` line (Cobra's; 4: no file names). Candidates come from the plugin's own parser, so
they never drift from its commands and flags; Release names come from the cluster, as the user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from glideslope.api import GROUP, PLURAL, VERSION
from glideslope.cli.plugin import Releases, parser

NO_FILES = ":4"
FILES = ":0"
_NAMED = frozenset({"status", "history", "approve", "promote", "abort", "retry", "undo", "pause", "resume",
                    "restart", "notes", "image"})
"""Commands whose first positional argument is a Release's name."""
_VALUED = {"-o": ["json", "yaml"], "--output": ["json", "yaml"]}


def _subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in p._actions:  # argparse keeps its subparsers here only
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _flags(p: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in p._actions for o in a.option_strings if o.startswith("--") or len(o) == 2)


def _takes_value(p: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings and a.nargs != 0 for a in p._actions)


def complete(words: Sequence[str], names: Callable[[Sequence[str]], list[str]]) -> list[str]:
    """Candidates for the last of `words` (the ones before it as typed), then the directive.
    `names(words)` lists the Releases the user can see."""
    *before, partial = words or [""]
    command = parser()
    positionals: list[str] = []
    skip = False
    for word in before:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = "=" not in word and _takes_value(command, word)
        elif word in _subcommands(command):
            command = _subcommands(command)[word]
        else:
            positionals.append(word)
    if before and before[-1] in _VALUED:
        return [v for v in _VALUED[before[-1]] if v.startswith(partial)] + [NO_FILES]
    if skip:
        return [FILES]  # the value of a flag: a path, a namespace... let the shell offer files
    if partial.startswith("-"):
        return [f for f in _flags(command) if f.startswith(partial)] + [NO_FILES]
    subs = _subcommands(command)
    if subs:
        return [s for s in sorted(subs) if s.startswith(partial)] + [NO_FILES]
    if command.prog.split()[-1] in _NAMED and not positionals:
        return [n for n in names(before) if n.startswith(partial)] + [NO_FILES]
    return [FILES if command.prog.split()[-1] == "lint" else NO_FILES]


def _release_names(words: Sequence[str]) -> list[str]:
    """The Releases in the namespace the typed flags name, as the user can list them; none when
    the cluster cannot be asked (completion must never print an error)."""
    flags = argparse.ArgumentParser(add_help=False)
    for flag, dest in (("--kubeconfig", "kubeconfig"), ("--context", "context")):
        flags.add_argument(flag, dest=dest, default=None)
    flags.add_argument("-n", "--namespace", dest="namespace", default=None)
    known, _ = flags.parse_known_args(list(words))
    try:
        releases = Releases(known.kubeconfig, known.context, known.namespace)
        releases.api_client.configuration.retries = 0
        body = cast(dict[str, Any], releases.api.list_namespaced_custom_object(
            GROUP, VERSION, releases.namespace, PLURAL, _request_timeout=2))
        return sorted(r["metadata"]["name"] for r in body.get("items", []))
    except Exception:
        return []


def main() -> None:
    for line in complete(sys.argv[1:], _release_names):
        print(line)
