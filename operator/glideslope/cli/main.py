"""The `glideslope` command: the operator, the local sandbox, the CRD and its reference."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _no_sandbox(command: str, exc: ModuleNotFoundError) -> RuntimeError:
    """The error for a developer command where the sandbox package is absent (the operator's
    image leaves it out); any other missing module is a real fault and is raised as it is."""
    if not (exc.name or "").startswith("glideslope.sandbox"):
        raise exc
    return RuntimeError(f"{command}: the sandbox is a developer tool and is not installed here (the operator's "
                        "image leaves it out); run it from a checkout: pip install -e .")


def _sandbox(args: argparse.Namespace) -> int:
    # Imported here so `glideslope crd` stays fast and needs nothing of the sandbox, and the
    # operator's image, which has no sandbox, still starts.
    try:
        from glideslope.sandbox.cluster import Sandbox
    except ModuleNotFoundError as exc:
        raise _no_sandbox("sandbox", exc) from exc

    box = Sandbox(Path(args.dir))
    if args.action == "up":
        box.up()
        return 0
    if args.action == "down":
        box.down(purge=args.purge)
        return 0
    print(f"sandbox {box.dir}")
    return 0 if box.print_status() else 3


def _crd(args: argparse.Namespace) -> int:
    from glideslope.api.crd import render_crd_yaml
    from glideslope.api.types import TemplateKind

    sys.stdout.write(render_crd_yaml(TemplateKind(args.kind) if args.kind != "Release" else None))
    return 0


def _docs(_: argparse.Namespace) -> int:
    from glideslope.cli.docs import render

    sys.stdout.write(render())
    return 0


def _operator(args: argparse.Namespace) -> int:
    from glideslope.operator_main import run

    if not args.all_namespaces and not args.namespace:
        raise RuntimeError("operator: give --namespace NS (repeatable) or --all-namespaces")
    from glideslope.egress import EgressPolicy

    try:
        policy = EgressPolicy.from_flags(prometheus_url=args.prometheus_url, prometheus_allow=args.prometheus_allow,
                                         egress_allow=args.egress_allow, egress_deny=args.egress_deny)
    except ValueError as exc:
        raise RuntimeError(f"operator: {exc}") from exc
    run(namespaces=args.namespace, all_namespaces=args.all_namespaces, prometheus_url=args.prometheus_url,
        policy=policy,
        metrics_port=args.metrics_port, metrics_address=args.metrics_address, health_port=args.health_port,
        interval=args.interval, log_format=args.log_format, log_level=args.log_level,
        lease_namespace=args.leader_election_namespace,
        lease_name=args.leader_election_name, lease_seconds=args.leader_election_lease_seconds)
    return 0


def _selftest(args: argparse.Namespace) -> int:
    from glideslope.kube.selftest import problems

    found = problems(args.namespace, args.deployment)
    for line in found:
        print(f"FAIL {line}")
    if not found:
        print(f"ok: the Release CRD is Established and Deployment {args.namespace}/{args.deployment} is Ready")
    return 1 if found else 0


def _build(args: argparse.Namespace) -> int:
    try:
        from glideslope.sandbox.anchors import ensure_anchors
        from glideslope.sandbox.build import ensure_binaries, ensure_helm, ensure_krew
    except ModuleNotFoundError as exc:
        raise _no_sandbox("build", exc) from exc

    if args.anchors:

        # Only the benchmark's anchors (`make anchors`), not the sandbox's binaries.
        print(ensure_anchors(force=args.force).folder)
        return 0
    # The same set `make binaries` builds: the sandbox's binaries, helm and krew.
    print(ensure_binaries(force=args.force).folder)
    print(ensure_helm(force=args.force))
    print(ensure_krew(force=args.force))
    return 0


def _operator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`glideslope operator`: what the chart's Deployment runs, and its flags."""
    op = sub.add_parser("operator", help="run the operator against the current kubeconfig (or in-cluster)")
    scope = op.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    op.add_argument("--prometheus-url", default=os.environ.get("GLIDESLOPE_PROMETHEUS_URL"),
                    help="default Prometheus for analysis (default: $GLIDESLOPE_PROMETHEUS_URL)")
    op.add_argument("--prometheus-allow", action="append", default=[], metavar="PREFIX",
                    help="a URL prefix a Release's spec.analysis.prometheus.address may start with "
                         "(repeatable; --prometheus-url is always allowed, nothing else by default)")
    op.add_argument("--egress-allow", action="append", default=[], metavar="CIDR",
                    help="addresses webhook gates and notifications may reach even inside a denied network "
                         "(repeatable; the most specific network decides)")
    op.add_argument("--egress-deny", action="append", default=[], metavar="CIDR",
                    help="addresses webhook gates and notifications may not reach (repeatable; loopback, "
                         "link-local and 0.0.0.0/8 are always denied unless allowed)")
    op.add_argument("--metrics-port", type=int, default=9102, help="the operator's own metrics; 0: off")
    op.add_argument("--metrics-bind-address", "--metrics-address", dest="metrics_address", default="0.0.0.0",
                    help="address the metrics port binds (0.0.0.0: every interface)")
    op.add_argument("--health-port", type=int, default=0, help="kopf's /healthz for probes; 0: off")
    op.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                    help="auto: console on a terminal, JSON lines otherwise")
    op.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                    help="the lowest level logged (kopf's per-object lines stay at warning)")
    op.add_argument("--leader-election-namespace", default=None,
                    help="elect one acting replica through a Lease in this namespace (default: off)")
    op.add_argument("--leader-election-name", default="glideslope", help="the Lease's name")
    op.add_argument("--leader-election-lease-seconds", type=float, default=15.0,
                    help="how long a silent leader keeps the Lease")
    op.add_argument("--interval", type=float, default=2.0, help="seconds between steps of each Release")
    op.set_defaults(func=_operator)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glideslope", description="Safe production releases on Kubernetes.")
    sub = p.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="a real local control plane, Prometheus and a traffic simulator")
    sb.add_argument("action", choices=["up", "down", "status"])
    sb.add_argument("--dir", default=".sandbox", help="sandbox folder (default: .sandbox)")
    sb.add_argument("--purge", action="store_true", help="with down: also delete etcd and Prometheus data")
    sb.set_defaults(func=_sandbox)

    bd = sub.add_parser("build", help="build (or find) the sandbox's Kubernetes, etcd, kwok, helm and krew binaries")
    bd.add_argument("--force", action="store_true", help="rebuild even when cached")
    bd.add_argument("--anchors", action="store_true",
                    help="instead, build the benchmark's anchors: Argo Rollouts' and Flagger's controllers")
    bd.set_defaults(func=_build)

    _operator_parser(sub)

    st = sub.add_parser("selftest", help="check an installation (the chart's `helm test`): the CRD is "
                        "Established and the operator's Deployment is Ready")
    st.add_argument("--namespace", "-n", required=True, help="the operator's namespace")
    st.add_argument("--deployment", required=True, help="the operator's Deployment")
    st.set_defaults(func=_selftest)

    crd = sub.add_parser("crd", help="print a CustomResourceDefinition (the Release's by default)")
    crd.add_argument("--kind", default="Release", choices=["Release", "AnalysisTemplate", "ClusterAnalysisTemplate"],
                     help="which CRD")
    crd.set_defaults(func=_crd)
    docs = sub.add_parser("docs", help="print docs/api.md, the Release API's reference")
    docs.set_defaults(func=_docs)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = int(args.func(args))
    except (RuntimeError, TimeoutError) as exc:
        print(f"glideslope: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
