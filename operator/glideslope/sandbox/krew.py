"""`make krew`: the archive krew installs `kubectl release` from, and its sha256 in the manifest.

    python -m glideslope.sandbox.krew [--out dist]

The archive holds the launcher `plugins/kubectl-release` and the Glideslope wheel (pure Python,
so one archive serves Linux and macOS). Its bytes depend only on the sources: the wheel and the
tar carry a fixed time, so building the same commit twice gives the same sha256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "plugins"
MANIFEST = PLUGINS / "release.yaml"
LAUNCHER = PLUGINS / "kubectl-release"
EPOCH = 1_700_000_000
"""The time every file in the archive carries (SOURCE_DATE_EPOCH for the wheel)."""


def version() -> str:
    found = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError("pyproject.toml names no version")
    return found.group(1)


def build(out: Path) -> tuple[Path, str]:
    """The archive, built into `out`, and its sha256."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--wheel-dir", tmp, str(REPO)], check=True, env=env)
        wheel = next(Path(tmp).glob("glideslope-*-py3-none-any.whl"))
        archive = out / f"kubectl-release-v{version()}.tar.gz"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, name, mode in ((LAUNCHER, LAUNCHER.name, 0o755), (wheel, wheel.name, 0o644)):
                info = tarfile.TarInfo(name)
                data = path.read_bytes()
                info.size, info.mode, info.mtime = len(data), mode, EPOCH
                tar.addfile(info, io.BytesIO(data))
        with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=EPOCH) as gz:
            gz.write(buffer.getvalue())
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def manifest(sha256: str, text: str | None = None) -> str:
    """The manifest with this version and `sha256` (its comments kept)."""
    tag = f"v{version()}"
    text = text if text is not None else MANIFEST.read_text()
    text = re.sub(r"(?m)^(  version: ).*$", rf"\g<1>{tag}", text)
    text = re.sub(r"(?m)^(    sha256: ).*$", rf"\g<1>{sha256}", text)
    text = re.sub(r"download/v[^/]+/kubectl-release-v[^/\s]+\.tar\.gz", f"download/{tag}/kubectl-release-{tag}.tar.gz",
                  text)
    return re.sub(r"dist/kubectl-release-v[^\s]+\.tar\.gz", f"dist/kubectl-release-{tag}.tar.gz", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the archive goes (default: dist/)")
    args = parser.parse_args()
    archive, sha256 = build(args.out)
    MANIFEST.write_text(manifest(sha256))
    print(f"{archive} sha256 {sha256}; {MANIFEST.relative_to(REPO)} updated")


if __name__ == "__main__":
    main()
