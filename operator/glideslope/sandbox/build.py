"""Build the sandbox's control-plane binaries from the Go module proxy, once per version.

Nothing here downloads a release binary: every binary is compiled with the local `go`
toolchain and cached outside the repository, so only the first run on a machine pays.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
GATEWAY_API_VERSION = "v1.4.1"
HELM_VERSION = "v3.22.0"
KREW_VERSION = "v0.4.3"
ISTIO_API_VERSION = "v1.24.2"

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ALL_BINARIES = (*KUBE_BINARIES, "etcd", "kwok")

# kwok >= 0.8 has no built-in stages: these files of its module make nodes Ready and pods
# Running, Ready, Completed (Jobs) and gone after deletion.
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
GATEWAY_API_CRDS = (
    "gateway.networking.k8s.io_gatewayclasses.yaml",
    "gateway.networking.k8s.io_gateways.yaml",
    "gateway.networking.k8s.io_httproutes.yaml",
    "gateway.networking.k8s.io_referencegrants.yaml",
)
ISTIO_CRDS = (
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
)
"""Of the CRDs istio.io/api ships (kubernetes/customresourcedefinitions.gen.yaml), those the
Istio router and the simulator use, and what a VirtualService refers to."""


def cache_root() -> Path:
    override = os.environ.get("GLIDESLOPE_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "glideslope"


def bin_dir() -> Path:
    """The folder holding every binary of this set of versions."""
    tag = f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}"
    return cache_root() / "bin" / tag


@dataclass(frozen=True)
class Binaries:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def missing(self) -> list[str]:
        return [b for b in ALL_BINARIES if not os.access(self.path(b), os.X_OK)]

    @property
    def kwok_stages(self) -> list[Path]:
        return sorted((self.folder / "kwok-stages").glob("*.yaml"))

    @property
    def gateway_api_crds(self) -> list[Path]:
        return sorted((self.folder / "gateway-api-crds").glob("*.yaml"))

    @property
    def istio_crds(self) -> list[Path]:
        return sorted((self.folder / f"istio-crds-{ISTIO_API_VERSION}").glob("*.yaml"))


def _log(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env.setdefault("GOFLAGS", "-mod=mod")
    env["GOWORK"] = "off"
    return env


def _run(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
    _log("$ " + " ".join(cmd))
    started = time.monotonic()
    subprocess.run(list(cmd), cwd=cwd, env=env, check=True)
    _log(f"  done in {time.monotonic() - started:.0f}s")


def module_dir(module: str, version: str, env: dict[str, str] | None = None) -> Path:
    """Download one module from the proxy (cached by Go) and return its source folder."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        env=env or _go_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(out.stdout)
    if "Error" in info:
        raise RuntimeError(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def _staging_modules(kube_dir: Path) -> list[str]:
    """k8s.io/kubernetes replaces each staging module with ./staging/src/...; read which."""
    staging: list[str] = []
    for line in (kube_dir / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("./staging/"):
            staging.append(parts[0])
    if not staging:
        raise RuntimeError("no staging modules found in k8s.io/kubernetes go.mod")
    return staging


def _scratch_module(work: Path, name: str, requires: dict[str, str],
                    replaces: dict[str, str], tools: Sequence[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    lines = [f"module glideslope.local/build/{name}", "", "go 1.24", "", "require ("]
    lines += [f"\t{m} {v}" for m, v in requires.items()]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{m} => {m} {v}" for m, v in replaces.items()]
        lines.append(")")
    (work / "go.mod").write_text("\n".join(lines) + "\n")
    # The classic tools.go pattern: never compiled, it only pins the commands for `go mod tidy`.
    imports = "\n".join(f'\t_ "{t}"' for t in tools)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")


def build_kubernetes(out: Path, work_root: Path) -> None:
    env = _go_env()
    kube_dir = module_dir("k8s.io/kubernetes", KUBERNETES_VERSION, env)
    minor = KUBERNETES_VERSION.lstrip("v").split(".")
    staging_version = f"v0.{minor[1]}.{minor[2]}"
    staging = _staging_modules(kube_dir)
    _log(f"kubernetes {KUBERNETES_VERSION}: replacing {len(staging)} staging modules with {staging_version}")
    work = work_root / f"kubernetes-{KUBERNETES_VERSION}"
    cmds = [f"k8s.io/kubernetes/cmd/{b}" for b in KUBE_BINARIES]
    _scratch_module(work, "kubernetes", {"k8s.io/kubernetes": KUBERNETES_VERSION},
                    {m: staging_version for m in staging}, cmds)
    _run(["go", "mod", "tidy"], work, env)
    major, mnr = minor[0], minor[1]
    ldflags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={mnr}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    out.mkdir(parents=True, exist_ok=True)
    # One `go build` for all four shares the compile of their common packages.
    _run(["go", "build", "-o", str(out) + "/", "-ldflags", " ".join(ldflags), *cmds], work, env)


def build_etcd(out: Path, work_root: Path) -> None:
    env = _go_env()
    work = work_root / f"etcd-{ETCD_VERSION}"
    # etcd's server module has relative replace lines; requiring it from a scratch module
    # resolves its siblings (api, client/pkg, ...) to the published versions instead.
    _scratch_module(work, "etcd", {"go.etcd.io/etcd/server/v3": ETCD_VERSION}, {},
                    ["go.etcd.io/etcd/server/v3"])
    _run(["go", "mod", "tidy"], work, env)
    out.mkdir(parents=True, exist_ok=True)
    _run(["go", "build", "-o", str(out / "etcd"), "-ldflags", "-s -w",
          "go.etcd.io/etcd/server/v3"], work, env)


def build_kwok(out: Path, work_root: Path) -> None:
    env = _go_env()
    env["GOBIN"] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    _run(["go", "install", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
         work_root, env)


def ensure_assets(bins: Binaries) -> None:
    """Copy the YAML the sandbox needs from kwok's and gateway-api's modules, once."""
    if len(bins.kwok_stages) < len(KWOK_STAGES):
        src = module_dir("sigs.k8s.io/kwok", KWOK_VERSION) / "kustomize" / "stage"
        dest = bins.folder / "kwok-stages"
        dest.mkdir(parents=True, exist_ok=True)
        for rel in KWOK_STAGES:
            shutil.copyfile(src / rel, dest / Path(rel).name)
    if len(bins.gateway_api_crds) < len(GATEWAY_API_CRDS):
        src = module_dir("sigs.k8s.io/gateway-api", GATEWAY_API_VERSION) / "config" / "crd" / "standard"
        dest = bins.folder / "gateway-api-crds"
        dest.mkdir(parents=True, exist_ok=True)
        for name in GATEWAY_API_CRDS:
            shutil.copyfile(src / name, dest / name)
    if len(bins.istio_crds) < len(ISTIO_CRDS):
        dest = bins.folder / f"istio-crds-{ISTIO_API_VERSION}"
        _split_istio_crds(module_dir("istio.io/api", ISTIO_API_VERSION), dest)


def _split_istio_crds(module: Path, dest: Path) -> None:
    """One file per CRD of ISTIO_CRDS, out of istio.io/api's single generated file."""
    text = (module / "kubernetes" / "customresourcedefinitions.gen.yaml").read_text()
    found = {d["metadata"]["name"]: d for d in yaml.safe_load_all(text)
             if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"}
    missing = [n for n in ISTIO_CRDS if n not in found]
    if missing:
        raise RuntimeError(f"istio.io/api {ISTIO_API_VERSION} lacks the CRDs {', '.join(missing)}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ISTIO_CRDS:
        (dest / f"{name}.yaml").write_text(yaml.safe_dump(found[name], sort_keys=False))


def ensure_binaries(force: bool = False) -> Binaries:
    """Return the folder of ready binaries, building what is missing.

    `GLIDESLOPE_KUBE_BIN` names a folder of ready binaries and skips the build.
    """
    ready = os.environ.get("GLIDESLOPE_KUBE_BIN")
    if ready:
        bins = Binaries(Path(ready))
        if bins.missing():
            raise RuntimeError(f"GLIDESLOPE_KUBE_BIN={ready} lacks: {', '.join(bins.missing())}")
        ensure_assets(bins)
        return bins
    if shutil.which("go") is None:
        raise RuntimeError("the `go` toolchain is needed to build the sandbox binaries")
    bins = Binaries(bin_dir())
    missing = ALL_BINARIES if force else bins.missing()
    if not missing:
        ensure_assets(bins)
        return bins
    work_root = cache_root() / "build"
    work_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _log(f"building {', '.join(missing)} into {bins.folder} (first run on this machine: many minutes)")
    if any(b in KUBE_BINARIES for b in missing):
        build_kubernetes(bins.folder, work_root)
    if "etcd" in missing:
        build_etcd(bins.folder, work_root)
    if "kwok" in missing:
        build_kwok(bins.folder, work_root)
    still = bins.missing()
    if still:
        raise RuntimeError(f"build finished but these are missing: {', '.join(still)}")
    ensure_assets(bins)
    _log(f"binaries ready in {bins.folder} after {time.monotonic() - started:.0f}s")
    return bins


def ensure_helm(force: bool = False) -> Path:
    """helm, for linting and rendering the chart; cached apart from the cluster's binaries."""
    ready = os.environ.get("GLIDESLOPE_KUBE_BIN")
    if ready and os.access(Path(ready) / "helm", os.X_OK):
        return Path(ready) / "helm"
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    # Without these, helm assumes Kubernetes 1.20 for `template` and `lint`.
    ldflags = " ".join([f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"] + [
        f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersion{part}={value}"
        for pkg in ("chartutil", "lint/rules") for part, value in (("Major", major), ("Minor", minor))])
    return _go_tool("helm", HELM_VERSION, "helm.sh/helm/v3/cmd/helm", ldflags, force)


def ensure_krew(force: bool = False) -> Path:
    """krew, to install the plugin from its manifest as users do; cached apart from the cluster's binaries."""
    return _go_tool("krew", KREW_VERSION, "sigs.k8s.io/krew/cmd/krew", "-s -w", force)


def _go_tool(name: str, version: str, package: str, ldflags: str, force: bool) -> Path:
    """One Go command, `go install`ed from the module proxy into the cache once per version."""
    out = cache_root() / "bin" / f"{name}-{version}"
    tool = out / name
    if force or not os.access(tool, os.X_OK):
        _log(f"building {name} {version} into {out}")
        env = _go_env()
        env["GOBIN"] = str(out)
        out.mkdir(parents=True, exist_ok=True)
        work = cache_root() / "build"
        work.mkdir(parents=True, exist_ok=True)
        _run(["go", "install", "-ldflags", ldflags, f"{package}@{version}"], work, env)
    return tool
