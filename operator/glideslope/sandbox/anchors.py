"""Build the benchmark's anchors, Argo Rollouts and Flagger, from the Go module proxy.

`make bench-compare` measures Glideslope side by side with the controllers people compare
it with. Like the sandbox's Kubernetes, each anchor's controller is compiled with the local
`go` toolchain from its published module, and its CRDs and RBAC are copied from that same
module, into one cached folder per pair of versions: only the first run on a machine pays.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from glideslope.sandbox.build import _go_env, _log, _run, cache_root, module_dir

ARGO_ROLLOUTS_MODULE = "github.com/argoproj/argo-rollouts"
# The newest release the proxy serves. Its go.mod asks for Go 1.26.10, newer than the
# sandbox's own minimum, so its build fetches this toolchain from the proxy.
ARGO_ROLLOUTS_VERSION = "v1.10.2"
ARGO_ROLLOUTS_GOTOOLCHAIN = "go1.27.3"
FLAGGER_MODULE = "github.com/fluxcd/flagger"
# The newest the proxy lists; its Gateway API provider is built in (-mesh-provider=gatewayapi:v1).
FLAGGER_VERSION = "v1.36.1"

ROLLOUTS_CONTROLLER = "rollouts-controller"
FLAGGER = "flagger"
ANCHOR_BINARIES = (ROLLOUTS_CONTROLLER, FLAGGER)

# Files of each module, copied as they ship: (path in the module, folder under the anchors').
ARGO_ROLLOUTS_MANIFESTS = (
    ("manifests/crds/analysis-run-crd.yaml", "manifests/argo-rollouts/crds"),
    ("manifests/crds/analysis-template-crd.yaml", "manifests/argo-rollouts/crds"),
    ("manifests/crds/cluster-analysis-template-crd.yaml", "manifests/argo-rollouts/crds"),
    ("manifests/crds/experiment-crd.yaml", "manifests/argo-rollouts/crds"),
    ("manifests/crds/rollout-crd.yaml", "manifests/argo-rollouts/crds"),
    # The ServiceAccount, the controller's ClusterRole and its binding (to argo-rollouts/argo-rollouts).
    ("manifests/base/argo-rollouts-sa.yaml", "manifests/argo-rollouts/rbac"),
    ("manifests/role/argo-rollouts-clusterrole.yaml", "manifests/argo-rollouts/rbac"),
    ("manifests/cluster-install/argo-rollouts-clusterrolebinding.yaml", "manifests/argo-rollouts/rbac"),
    # The (empty) ConfigMap the controller reads its traffic-router and metric plugins from.
    ("manifests/base/argo-rollouts-config.yaml", "manifests/argo-rollouts/config"),
)
FLAGGER_MANIFESTS = (
    ("artifacts/flagger/crd.yaml", "manifests/flagger/crds"),
    # The kustomize base: a ServiceAccount (namespace set at apply time) and a ClusterRole
    # bound to flagger-system/flagger.
    ("kustomize/base/flagger/account.yaml", "manifests/flagger/rbac"),
    ("kustomize/base/flagger/rbac.yaml", "manifests/flagger/rbac"),
)


def anchors_dir() -> Path:
    """The folder holding both anchors of this pair of versions."""
    return cache_root() / "bin" / f"anchors-argo-{ARGO_ROLLOUTS_VERSION}_flagger-{FLAGGER_VERSION}"


def _manifest_path(folder: Path, entry: tuple[str, str]) -> Path:
    source, dest = entry
    return folder / dest / Path(source).name


@dataclass(frozen=True)
class Anchors:
    folder: Path

    @property
    def rollouts_controller(self) -> Path:
        return self.folder / ROLLOUTS_CONTROLLER

    @property
    def flagger(self) -> Path:
        return self.folder / FLAGGER

    def _files(self, sub: str) -> list[Path]:
        return sorted((self.folder / sub).glob("*.yaml"))

    @property
    def argo_rollouts_crds(self) -> list[Path]:
        return self._files("manifests/argo-rollouts/crds")

    @property
    def argo_rollouts_rbac(self) -> list[Path]:
        return self._files("manifests/argo-rollouts/rbac")

    @property
    def argo_rollouts_config(self) -> list[Path]:
        return self._files("manifests/argo-rollouts/config")

    @property
    def flagger_crds(self) -> list[Path]:
        return self._files("manifests/flagger/crds")

    @property
    def flagger_rbac(self) -> list[Path]:
        return self._files("manifests/flagger/rbac")

    def missing_binaries(self) -> list[str]:
        return [b for b in ANCHOR_BINARIES if not os.access(self.folder / b, os.X_OK)]

    def missing_manifests(self) -> list[str]:
        return [f"{module}/{entry[0]}"
                for module, entries in ((ARGO_ROLLOUTS_MODULE, ARGO_ROLLOUTS_MANIFESTS),
                                        (FLAGGER_MODULE, FLAGGER_MANIFESTS))
                for entry in entries if not _manifest_path(self.folder, entry).is_file()]


_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)\s*$", re.MULTILINE)


def go_directive(go_mod: str) -> str:
    found = _GO_DIRECTIVE.search(go_mod)
    if not found:
        raise ValueError("go.mod has no go directive")
    return found.group(1)


def replace_lines(go_mod: str) -> list[str]:
    """The replace directives of a go.mod, one `old [v] => new [v]` each, in file order.

    A replace pointing at a local folder (`=> ./x`, `=> ../x`) cannot be repeated in another
    module, so it is refused rather than silently dropped.
    """
    found: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            found.append(" ".join(line.split()))
        elif line in ("replace (", "replace("):
            in_block = True
        elif line.startswith("replace "):
            found.append(" ".join(line[len("replace "):].split()))
    for spec in found:
        _, sep, target = spec.partition(" => ")
        if not sep:
            raise ValueError(f"malformed replace directive: {spec!r}")
        if target.startswith(("./", "../", "/")):
            raise ValueError(f"replace to a local folder cannot be repeated: {spec!r}")
    return found


def scratch_go_mod(name: str, requires: Mapping[str, str], anchor_go_mod: str) -> str:
    """The go.mod of a scratch module that builds an anchor as its own go.mod would.

    `go install module@version` ignores replace directives, so the anchor is required from a
    module of our own that repeats them; the go directive is the anchor's, for the same
    language version and toolchain check.
    """
    lines = [f"module glideslope.local/anchors/{name}", "", f"go {go_directive(anchor_go_mod)}", "",
             "require ("]
    lines += [f"\t{module} {version}" for module, version in requires.items()]
    lines.append(")")
    replaces = replace_lines(anchor_go_mod)
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{spec}" for spec in replaces]
        lines.append(")")
    return "\n".join(lines) + "\n"


def tools_go(packages: Sequence[str]) -> str:
    # Never compiled: it only pins the commands for `go mod tidy`.
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def _build_anchor(*, name: str, module: str, version: str, package: str, out: Path,
                  ldflags: Sequence[str], env: dict[str, str]) -> Path:
    """Compile one anchor's command into `out`; return the anchor's module folder."""
    source = module_dir(module, version, env)
    work = cache_root() / "build" / f"anchor-{name}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(scratch_go_mod(name, {module: version}, (source / "go.mod").read_text()))
    (work / "go.sum").unlink(missing_ok=True)
    (work / "tools.go").write_text(tools_go([package]))
    _run(["go", "mod", "tidy"], work, env)
    out.mkdir(parents=True, exist_ok=True)
    _run(["go", "build", "-trimpath", "-o", str(out / Path(package).name),
          "-ldflags", " ".join(["-s", "-w", *ldflags]), package], work, env)
    return source


def build_argo_rollouts(out: Path) -> Path:
    env = _go_env()
    env["GOTOOLCHAIN"] = ARGO_ROLLOUTS_GOTOOLCHAIN
    pkg = f"{ARGO_ROLLOUTS_MODULE}/utils/version"
    return _build_anchor(
        name="argo-rollouts", module=ARGO_ROLLOUTS_MODULE, version=ARGO_ROLLOUTS_VERSION,
        package=f"{ARGO_ROLLOUTS_MODULE}/cmd/{ROLLOUTS_CONTROLLER}", out=out, env=env,
        ldflags=[f"-X {pkg}.version={ARGO_ROLLOUTS_VERSION.lstrip('v')}", f"-X {pkg}.gitTreeState=clean"])


def build_flagger(out: Path) -> Path:
    return _build_anchor(
        name="flagger", module=FLAGGER_MODULE, version=FLAGGER_VERSION,
        package=f"{FLAGGER_MODULE}/cmd/{FLAGGER}", out=out, env=_go_env(),
        ldflags=[f"-X {FLAGGER_MODULE}/pkg/version.REVISION={FLAGGER_VERSION}"])


def copy_manifests(source: Path, entries: Sequence[tuple[str, str]], folder: Path) -> None:
    for entry in entries:
        dest = _manifest_path(folder, entry)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / entry[0], dest)


def ensure_anchors(force: bool = False) -> Anchors:
    """Return the folder of both anchors, building and copying what is missing."""
    anchors = Anchors(anchors_dir())
    rebuild = list(ANCHOR_BINARIES) if force else anchors.missing_binaries()
    if not rebuild and not anchors.missing_manifests():
        return anchors
    if shutil.which("go") is None:
        raise RuntimeError("the `go` toolchain is needed to build the benchmark's anchors")
    started = time.monotonic()
    _log(f"anchors into {anchors.folder}" + (f": building {', '.join(rebuild)} (first run on this machine:"
                                             " many minutes)" if rebuild else ": copying manifests"))
    argo_env = _go_env()
    argo_env["GOTOOLCHAIN"] = ARGO_ROLLOUTS_GOTOOLCHAIN
    argo_source = (build_argo_rollouts(anchors.folder) if ROLLOUTS_CONTROLLER in rebuild
                   else module_dir(ARGO_ROLLOUTS_MODULE, ARGO_ROLLOUTS_VERSION, argo_env))
    flagger_source = (build_flagger(anchors.folder) if FLAGGER in rebuild
                      else module_dir(FLAGGER_MODULE, FLAGGER_VERSION))
    copy_manifests(argo_source, ARGO_ROLLOUTS_MANIFESTS, anchors.folder)
    copy_manifests(flagger_source, FLAGGER_MANIFESTS, anchors.folder)
    still = anchors.missing_binaries() + anchors.missing_manifests()
    if still:
        raise RuntimeError(f"anchor build finished but these are missing: {', '.join(still)}")
    _log(f"anchors ready in {anchors.folder} after {time.monotonic() - started:.0f}s")
    return anchors
