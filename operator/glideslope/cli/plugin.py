"""`kubectl release`: look at Releases and act on them.

Commands are annotations that the operator consumes, records in status and as an Event,
then removes (`COMMANDS` in core/model.py); they never change `spec`, so a GitOps tool sees no drift.

`--as` and `--as-group` are kubectl's impersonation flags: every request carries them as
`Impersonate-User`/`Impersonate-Group` headers. `approve` signs with the caller's user name as
the API server tells it (a SelfSubjectReview, what `kubectl auth whoami` asks), never one typed
in: the chart's admission policy refuses an `approved-by` that is not the writer's own name.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import queue
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from glideslope.api import (
    FINAL_PHASES,
    GROUP,
    PLURAL,
    VERSION,
    Phase,
    ReleaseStatus,
    parse_duration,
    parse_release,
    parse_status,
)
from glideslope.cli import adopt, lint
from glideslope.cli.live import Watcher
from glideslope.core import notes
from glideslope.core.model import ABORT, APPROVE, APPROVED_BY, PAUSE, PROMOTE, RESTART, RESUME, RETRY, UNDO
from glideslope.kube import records
from glideslope.kube.client import Kube


class PluginError(Exception):
    """An error the user can act on, printed without a traceback."""


class _Impersonating:
    """The API client's urllib3 pool, adding kubectl's impersonation headers to every request:
    `Impersonate-User`, and one `Impersonate-Group` line per group (the API server reads each
    line as one group, so they cannot be joined into one header)."""

    def __init__(self, pool: Any, user: str, groups: Sequence[str]) -> None:
        self._pool, self._user, self._groups = pool, user, tuple(groups)

    def request(self, method: str, url: str, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
        merged = urllib3.HTTPHeaderDict(headers or {})
        for key in ("Impersonate-User", "Impersonate-Group"):
            merged.discard(key)
        merged["Impersonate-User"] = self._user
        for group in self._groups:
            merged.add("Impersonate-Group", group)
        return self._pool.request(method, url, *args, headers=merged, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def impersonate(api_client: client.ApiClient, user: str | None, groups: Sequence[str] = ()) -> None:
    """Make every request of `api_client` act as `user` (and `groups`), as kubectl's `--as` and
    `--as-group` do; the kubeconfig's identity needs the `impersonate` verb on them."""
    if not user:
        if groups:
            raise PluginError("--as-group needs --as: the API server impersonates groups of a user only")
        return
    rest = api_client.rest_client
    # Duck-typed: the REST client calls only `request` (and `clear`, passed through).
    rest.pool_manager = cast(urllib3.PoolManager, _Impersonating(rest.pool_manager, user, groups))


def _server_message(exc: ApiException) -> str | None:
    """The `message` of the Status the API server answered with, if any."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else None


class Releases:
    """Reads and annotates Releases with the user's own kubeconfig and permissions."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None,
                 as_user: str | None = None, as_groups: Sequence[str] = ()) -> None:
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            default_ns = (active or {}).get("context", {}).get("namespace", "default")
        except config.ConfigException:
            try:
                config.load_incluster_config()
            except config.ConfigException as exc:
                raise PluginError(f"no kubeconfig found: {exc}") from exc
            default_ns = "default"
        self.namespace: str = namespace or default_ns
        self.api_client = client.ApiClient()
        impersonate(self.api_client, as_user, as_groups)
        self.api = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise PluginError(f"{what}: not found in namespace {self.namespace} "
                                  "(is the Release CRD installed, and the name right?)") from exc
            if exc.status == 403:
                reason = _server_message(exc)
                if reason and "denied request" in reason:
                    # An admission policy (such as the approval policy), not RBAC: say what it said.
                    raise PluginError(f"{what}: refused by the API server: {reason}") from exc
                raise PluginError(f"{what}: forbidden: your account may not do this in namespace "
                                  f"{self.namespace}" + (f" ({reason})" if reason else "")) from exc
            raise PluginError(f"{what}: the API server answered {exc.status} {exc.reason}") from exc
        except OSError as exc:
            raise PluginError(f"{what}: cannot reach the API server: {exc}") from exc

    def whoami(self) -> str:
        """The caller's user name as the API server knows it (impersonation included): a
        SelfSubjectReview, as `kubectl auth whoami` asks."""
        auth = client.AuthenticationV1Api(self.api_client)
        try:
            review = auth.create_self_subject_review(client.V1SelfSubjectReview())
        except ApiException as exc:
            reason = _server_message(exc) or f"{exc.status} {exc.reason}"
            raise PluginError(f"cannot learn your user name from the API server (SelfSubjectReview, "
                              f"authentication.k8s.io/v1): {reason}") from exc
        except OSError as exc:
            raise PluginError(f"cannot reach the API server: {exc}") from exc
        user = review.status.user_info if review.status is not None else None
        name = user.username if user is not None else None
        if not name:
            raise PluginError("the API server did not say who you are (SelfSubjectReview has no user name)")
        return str(name)

    def list(self, all_namespaces: bool) -> list[dict[str, Any]]:
        if all_namespaces:
            body = self._call("list releases", self.api.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            body = self._call("list releases", self.api.list_namespaced_custom_object,
                              GROUP, VERSION, self.namespace, PLURAL)
        items: list[dict[str, Any]] = body.get("items", [])
        return items

    def get(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self._call(f"release {name}", self.api.get_namespaced_custom_object,
                                          GROUP, VERSION, self.namespace, PLURAL, name)
        return body

    def record(self, name: str) -> notes.Record | None:
        """The closing record the operator keeps (ConfigMap `<name>-record`); None: none yet."""
        kube = Kube(self.api.api_client, self.core, None, self.api)
        found: notes.Record | None = self._call(f"record of release {name} (ConfigMap {records.name_for(name)})",
                                                records.read, kube, self.namespace, name)
        return found

    def adopted(self, deployment: str, service: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The Deployment to adopt and the Service to take over, as the API returns them."""
        apps = client.AppsV1Api(self.api_client)
        found = self._call(f"deployment {deployment}", apps.read_namespaced_deployment, deployment, self.namespace)
        taken = None if service is None else self._call(f"service {service}", self.core.read_namespaced_service,
                                                        service, self.namespace)
        plain: Any = self.api_client.sanitize_for_serialization
        return plain(found), None if taken is None else plain(taken)

    def patch_spec(self, name: str, patch: dict[str, Any]) -> None:
        self._call(f"release {name}", self.api.patch_namespaced_custom_object,
                   GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        self.get(name)  # a clear "not found" before a patch that would say less
        patch = {"metadata": {"annotations": annotations}}
        self._call(f"release {name}", self.api.patch_namespaced_custom_object,
                   GROUP, VERSION, self.namespace, PLURAL, name, patch)


def image_patch(body: dict[str, Any], images: Sequence[str], version: str | None) -> dict[str, Any]:
    """A merge patch of the Release setting each `CONTAINER=IMAGE` (and spec.version): the whole
    containers list, since a merge patch replaces a list, guarded by the resourceVersion read, so
    a change made meanwhile is not overwritten."""
    template = copy.deepcopy(((body.get("spec") or {}).get("template") or {}).get("spec") or {})
    containers = template.get("containers") or []
    for item in images:
        container, sep, image = item.partition("=")
        if not sep or not container or not image:
            raise PluginError(f"set image: {item!r} is not CONTAINER=IMAGE")
        found = next((c for c in containers if c.get("name") == container), None)
        if found is None:
            known = ", ".join(str(c.get("name")) for c in containers) or "none"
            raise PluginError(f"set image: no container {container!r} in the pod template (containers: {known})")
        found["image"] = image
    spec: dict[str, Any] = {"template": {"spec": {"containers": containers}}}
    if version is not None:
        spec["version"] = version
    return {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "spec": spec}


def _status(body: dict[str, Any]) -> ReleaseStatus:
    return parse_status(body.get("status"))


def render_list(items: Sequence[dict[str, Any]], all_namespaces: bool) -> Table:
    table = Table(box=None, header_style="bold")
    columns = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME", "VERSION", "STRATEGY", "PHASE", "STEP", "WEIGHT", "GATES", "MESSAGE"]
    for col in columns:
        table.add_column(col)
    for item in items:
        status = _status(item)
        spec = item.get("spec", {})
        row = [item["metadata"]["name"], str(spec.get("version", "")), str(spec.get("strategy", {}).get("type", "")),
               str(status.phase or ""), status.step_display or "", "" if status.weight is None else f"{status.weight}%",
               status.gates_display or "", status.message or ""]
        table.add_row(*([item["metadata"]["namespace"]] if all_namespaces else []), *row)
    return table


def render_status(body: dict[str, Any]) -> Table:
    status = _status(body)
    spec = body.get("spec", {})
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, Text | str]] = [
        ("release", f"{body['metadata']['namespace']}/{body['metadata']['name']}"),
        ("version", f"{spec.get('version')} (revision {status.revision or '-'})"),
        ("stable", f"{status.stable_version or '-'} (revision {status.stable_revision or '-'})"),
        ("strategy", str(spec.get("strategy", {}).get("type", ""))),
        ("phase", str(status.phase or Phase.PENDING)),
        ("message", status.message or ""),
        ("step", status.step_display or "-"),
        ("weight", "-" if status.weight is None else f"{status.weight}%" + (
            "" if status.measured_weight is None else f" (measured {status.measured_weight}%)")),
    ]
    for gate in status.gates:
        rows.append((f"gate {gate.name}", f"{gate.state} {gate.message or ''}".strip()))
    for trig in status.analysis:
        value = "-" if trig.last_value is None else f"{trig.last_value:g}"
        rows.append((f"trigger {trig.name}", f"{trig.state} last={value} failures={trig.failures}"))
    rows += _judge_rows(status)
    for cond in status.conditions:
        rows.append((f"condition {cond.type}", f"{cond.status} {cond.reason or ''} {cond.message or ''}".strip()))
    for key, shown in rows:
        table.add_row(key, shown)
    return table


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], low: float, high: float) -> str:
    """`values` as one bar each, on the scale `low`..`high` (shared by the two sides of a metric,
    so the bars compare)."""
    span = high - low
    top = len(_BARS) - 1
    return "".join(_BARS[0 if span <= 0 else min(top, max(0, round((v - low) / span * top)))] for v in values)


def _judge_rows(status: ReleaseStatus) -> list[tuple[str, Text | str]]:
    """The judge's verdict, and per metric its result and a small chart of both sides' values
    over the window (canary above, baseline below, on one scale)."""
    judged = status.judge
    if judged is None:
        return []
    score = "-" if judged.score is None else str(judged.score)
    rows: list[tuple[str, Text | str]] = [
        ("judge", f"{judged.verdict} score={score} looks={judged.looks} alphaSpent={judged.alpha_spent:.4g}")]
    for metric in judged.metrics:
        p = "-" if metric.p_value is None else f"{metric.p_value:.3g}"
        medians = " ".join(f"{side}={'-' if m is None else f'{m:.4g}'}" for side, m in
                           (("canary", metric.canary_median), ("baseline", metric.baseline_median)))
        rows.append((f"judge {metric.name}", f"{metric.classification} p={p} {medians}"))
        both = [*metric.canary_values, *metric.baseline_values]
        if both:
            low, high = min(both), max(both)
            chart = Text()
            chart.append(f"canary   {sparkline(metric.canary_values, low, high)}", style="yellow")
            chart.append(f"\nbaseline {sparkline(metric.baseline_values, low, high)}", style="cyan")
            chart.append(f"  ({low:.4g}..{high:.4g})")
            rows.append(("", chart))
    return rows


def render_history(body: dict[str, Any]) -> Table:
    table = Table(box=None, header_style="bold")
    # Every column but the reason keeps its whole value; the reason takes the width left and
    # wraps whole words (a narrow console used to cut every column to a few characters).
    for col in ("VERSION", "REVISION", "OUTCOME", "STARTED", "FINISHED", "DURATION", "ROLLBACK"):
        table.add_column(col, no_wrap=True)
    table.add_column("REASON", ratio=1, min_width=20, overflow="fold")
    for h in _status(body).history:
        table.add_row(h.version or "", h.revision or "", str(h.outcome),
                      h.started_at.isoformat() if h.started_at else "",
                      h.finished_at.isoformat() if h.finished_at else "",
                      "" if h.duration_seconds is None else f"{h.duration_seconds:g}s",
                      "" if h.rollback_seconds is None else f"{h.rollback_seconds:g}s",
                      h.reason or "")
    return table


def release_notes(body: dict[str, Any], record: notes.Record | None, wanted: str | None = None, *,
                  every: bool = False) -> str:
    """The release notes and closing record of one rollout (`wanted`: a revision, a unique
    prefix of one, or a version; default the current one), or of every rollout, as Markdown.
    The stored record is brought up to date with the status as it is now."""
    meta = body["metadata"]
    try:
        release = parse_release(body)
    except ValidationError as exc:
        raise PluginError(f"release {meta['name']}: its spec cannot be read: {exc.error_count()} problem(s)") from exc
    folded = notes.fold(record or notes.Record(), release.spec, release.status, [],
                        release=meta["name"], namespace=meta["namespace"])
    if every:
        if not folded.rollouts:
            raise PluginError(f"release {meta['name']}: nothing rolled out yet")
        return "\n---\n\n".join(notes.render(folded, r) for r in reversed(folded.rollouts))
    rollout = folded.find(wanted)
    if rollout is None:
        known = ", ".join(f"{r.version} ({r.revision})" for r in folded.rollouts) or "none yet"
        what = f"no rollout of {wanted!r}" if wanted else "nothing rolled out yet"
        raise PluginError(f"release {meta['name']}: {what}; recorded: {known}")
    return notes.render(folded, rollout)


def command_annotations(args: argparse.Namespace, approver: str | None = None) -> dict[str, str]:
    """The annotation(s) a command sets (`COMMANDS` in core/model.py); `approve` is signed by
    `approver`, the caller's user name as the API server knows it (`Releases.whoami`)."""
    if args.command == "approve":
        if not approver:
            raise PluginError("approve: the approver's user name is unknown")
        return {APPROVE: args.gate, APPROVED_BY: approver}
    if args.command == "promote":
        return {PROMOTE: "full" if args.full else "step"}
    if args.command == "abort":
        return {ABORT: args.reason or "aborted by kubectl release"}
    if args.command == "retry":
        return {RETRY: "true"}
    if args.command == "undo":
        return {UNDO: args.revision or ""}
    if args.command == "pause":
        return {PAUSE: args.reason or "paused by kubectl release"}
    if args.command == "resume":
        return {RESUME: ""}
    if args.command == "restart":
        return {RESTART: datetime.now(UTC).isoformat(timespec="seconds")}
    raise PluginError(f"unknown command {args.command}")


def _connection_flags(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--kubeconfig", default=default, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--context", default=default)
    p.add_argument("-n", "--namespace", default=default, help="default: the context's namespace")
    p.add_argument("--as", dest="as_user", default=default, metavar="USER",
                   help="act as USER (impersonation, as kubectl's --as)")
    p.add_argument("--as-group", dest="as_groups", action="append", default=default, metavar="GROUP",
                   help="act as a member of GROUP too (repeatable; needs --as)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl release", description="Look at Glideslope Releases and act on them.")
    _connection_flags(p, None)
    # The same flags after the command (`kubectl release list -n shop`), overriding only when given.
    common = argparse.ArgumentParser(add_help=False)
    _connection_flags(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=argparse.ArgumentParser)
    add = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return add(name, parents=[common], **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    # Order matters: `--help` lists the commands in the order they are added.
    _reader_commands(sub)
    sub.add_parser("version", help="the plugin's version")
    li = argparse.ArgumentParser(add_help=False)
    li.add_argument("files", nargs="+", metavar="FILE", help="YAML manifests (`-`: standard input)")
    add("lint", parents=[li], help="check Release manifests offline, as the operator would (exit 0 valid, "
        "1 invalid, 2 unreadable): for CI, before `kubectl apply`")
    _set_command(sub, common)
    ad = sub.add_parser("adopt", help="print a Release that adopts an existing Deployment (spec.workloadRef), "
                        "ready to kubectl apply")
    ad.add_argument("target", metavar="deployment/NAME")
    ad.add_argument("--strategy", choices=list(adopt.STRATEGIES), default="Canary")
    ad.add_argument("--service", metavar="NAME", help="an existing Service for the Release to take over")
    _action_commands(sub)
    _notes_command(sub)
    return p


def _reader_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`list`, `status` and `history`: the commands that only read, each with `-o json|yaml`."""
    ls = sub.add_parser("list", help="Releases with their phase, step, weight and gates")
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    stp = sub.add_parser("status", help="one Release in detail; -w: a live view; --timeout: wait for the "
                                        "rollout to end (exit 0 Succeeded, 1 RolledBack or Failed, 2 timeout)")
    stp.add_argument("name")
    stp.add_argument("-w", "--watch", action="store_true", help="follow it live until you press Ctrl-C")
    stp.add_argument("--timeout", default=None, metavar="DURATION",
                     help="wait up to this long (10m, 90s) for the current rollout to end: for CI pipelines")
    hi = sub.add_parser("history", help="finished rollouts of a Release")
    hi.add_argument("name")
    for reader in (ls, stp, hi):
        reader.add_argument("-o", "--output", choices=["json", "yaml"], default=None,
                            help="the objects as the API server has them, for scripts")


def _set_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """`set image`: its own subcommands, which take the connection flags too."""
    set_cmd = sub.add_parser("set", help="change a Release's spec")
    what = set_cmd.add_subparsers(dest="what", required=True)
    im = what.add_parser("image", parents=[common], help="set a container's image in the pod template "
                         "(a new revision: the Release rolls it out by its strategy)")
    im.add_argument("name")
    im.add_argument("images", nargs="+", metavar="CONTAINER=IMAGE")
    im.add_argument("--version", dest="new_version", default=None,
                    help="set spec.version too (the version people read in Events and notes)")


def _action_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that steer a rollout: approve, promote, abort, retry, undo, pause, resume, restart."""
    ap = sub.add_parser("approve", help="pass an approval gate, signed with your user name as the API server "
                        "knows it (`kubectl auth whoami`)")
    ap.add_argument("name")
    ap.add_argument("--gate", required=True)
    pr = sub.add_parser("promote", help="go on one step, or with --full straight to 100 %%")
    pr.add_argument("name")
    pr.add_argument("--full", action="store_true")
    ab = sub.add_parser("abort", help="roll back to the stable revision now")
    ab.add_argument("name")
    ab.add_argument("--reason", default=None)
    sub.add_parser("retry", help="start again after an abort or a failure").add_argument("name")
    un = sub.add_parser("undo", help="go back to the previous revision")
    un.add_argument("name")
    un.add_argument("--revision", default=None)
    pa = sub.add_parser("pause", help="hold the rollout where it is until `resume`")
    pa.add_argument("name")
    pa.add_argument("--reason", default=None)
    sub.add_parser("resume", help="go on after `pause`").add_argument("name")
    sub.add_parser("restart", help="new pods of the same revision, one at a time (a rollout goes on as it "
                   "was)").add_argument("name")


def _notes_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`notes`: one rollout by revision or version, or all of them."""
    no = sub.add_parser("notes", help="release notes and the closing record of a rollout, as Markdown")
    no.add_argument("name")
    which = no.add_mutually_exclusive_group()
    which.add_argument("--revision", default=None, help="a revision (or a prefix of one) or a version; "
                       "default: the current rollout")
    which.add_argument("--all", dest="every", action="store_true", help="every recorded rollout, newest first")


EXIT_SUCCEEDED, EXIT_ROLLED_BACK, EXIT_TIMEOUT = 0, 1, 2
"""`status --timeout`'s exit codes, for a pipeline step that waits on a rollout."""
WAIT_POLL_SECONDS = 2.0


def run(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    args = parser().parse_args(argv)
    # Piped output keeps whole lines: scripts and tests grep it.
    tty = sys.stdout.isatty()
    out = console or Console(soft_wrap=not tty, width=None if tty else 400)
    if args.command == "version":
        out.print(f"kubectl-release {_version()}")
        return 0
    if args.command == "lint":
        return lint.run(args.files, lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True))
    releases = Releases(args.kubeconfig, args.context, args.namespace, args.as_user, args.as_groups or ())
    if getattr(args, "output", None):
        _print_as(releases, args, out)
        return 0
    if args.command == "adopt":
        try:
            deployment, service = releases.adopted(adopt.target(args.target), args.service)
            text = adopt.manifest(deployment, args.strategy, service)
        except adopt.AdoptError as exc:
            raise PluginError(str(exc)) from exc
        out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True, end="")
        return 0
    if args.command == "status" and args.timeout is not None:
        return wait(releases, args.name, _seconds(args.timeout), out)
    if args.command == "list":
        items = releases.list(args.all_namespaces)
        if not items:
            where = "any namespace" if args.all_namespaces else f"namespace {releases.namespace}"
            out.print(f"No releases in {where}.")
            return 0
        out.print(render_list(items, args.all_namespaces))
    elif args.command == "status" and args.watch:
        if args.as_user:
            # The live view's watches use the kubeconfig's identity as it is.
            raise PluginError("status -w does not support --as: drop -w, or use a kubeconfig of that user")
        releases.get(args.name)  # a clear "not found" before the live view
        follow(releases.namespace, args.name, out)
    elif args.command == "status":
        out.print(render_status(releases.get(args.name)))
    elif args.command == "history":
        out.print(render_history(releases.get(args.name)))
    elif args.command == "set":
        body = releases.get(args.name)
        patch = image_patch(body, args.images, args.new_version)
        releases.patch_spec(args.name, patch)
        out.print(f"release {releases.namespace}/{args.name}: " + ", ".join(args.images)
                  + (f", version {args.new_version}" if args.new_version else ""), markup=False)
    elif args.command == "notes":
        body = releases.get(args.name)
        text = release_notes(body, releases.record(args.name), args.revision, every=args.every)
        # Plain Markdown, as stored: for a terminal, a file or a pull request alike.
        out.print(text, markup=False, highlight=False, emoji=False)
    else:
        approver = releases.whoami() if args.command == "approve" else None
        annotations = command_annotations(args, approver)
        releases.annotate(args.name, annotations)
        out.print(f"release {releases.namespace}/{args.name}: {args.command} requested "
                  f"({', '.join(f'{k}={v}' for k, v in annotations.items())})")
    return 0


def _print_as(releases: Releases, args: argparse.Namespace, out: Console) -> None:
    """`list`, `status` or `history` with `-o json|yaml`: the objects as the API server has them."""
    found: Any
    if args.command == "list":
        found = {"apiVersion": "v1", "kind": "List", "items": releases.list(args.all_namespaces)}
    else:
        found = releases.get(args.name)
        if args.command == "history":
            found = (found.get("status") or {}).get("history") or []
    text = json.dumps(found, indent=2) if args.output == "json" else yaml.safe_dump(found, sort_keys=False)
    out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


def wait(releases: Releases, name: str, timeout: float, out: Console) -> int:
    """Wait for the rollout of the Release's current spec to end: the exit code says how."""
    deadline = time.monotonic() + timeout
    said = None
    while True:
        body = releases.get(name)
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        phase = status.get("phase")
        current = status.get("observedGeneration") == meta.get("generation")
        line = f"{releases.namespace}/{name}: {phase or 'no status yet'} {status.get('version') or ''}".rstrip()
        if line != said:
            out.print(line + (f": {status['message']}" if status.get("message") else ""), markup=False)
            said = line
        if current and phase in FINAL_PHASES:
            return EXIT_SUCCEEDED if phase == Phase.SUCCEEDED else EXIT_ROLLED_BACK
        if time.monotonic() >= deadline:
            out.print(f"{releases.namespace}/{name}: still {phase or 'without status'} after {timeout:g}s",
                      markup=False)
            return EXIT_TIMEOUT
        time.sleep(min(WAIT_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))


def _seconds(duration: str) -> float:
    try:
        return parse_duration(duration).total_seconds()
    except ValueError as exc:
        raise PluginError(f"--timeout: {exc}") from exc


def _version() -> str:
    try:
        return importlib.metadata.version("glideslope")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def follow(namespace: str, name: str, console: Console, until_final: bool = False,
           timeout: float | None = None) -> str | None:
    """The live view; with `until_final` it returns once the rollout ends (for scripts and demos)."""
    watcher = Watcher(namespace, name)
    watcher.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        with Live(watcher.view(), console=console, refresh_per_second=4) as live:
            while deadline is None or time.monotonic() < deadline:
                try:
                    watcher.changes.get(timeout=1)
                except queue.Empty:
                    continue
                live.update(watcher.view())
                phase = watcher.settled_phase()
                if until_final and phase in FINAL_PHASES:
                    # The last Events and Deployments arrive on their own watches a moment after
                    # the status: show them too, once the watches go quiet.
                    deadline_quiet = time.monotonic() + 3.0
                    while time.monotonic() < deadline_quiet:
                        try:
                            watcher.changes.get(timeout=1.0)
                        except queue.Empty:
                            break
                    live.update(watcher.view())
                    return phase
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        if not console.is_terminal:
            console.line()  # off a terminal, Live leaves its last frame without a line break
    return watcher.phase()


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
