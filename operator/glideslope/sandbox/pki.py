"""Certificates and keys for the sandbox's API server, made once with the `openssl` CLI."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The API server's in-cluster addresses; the first IP of the service range is the
# `kubernetes` Service.
SERVER_SANS = (
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:127.0.0.1",
    "IP:10.96.0.1",
)


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.folder / "sa.pub"

    @property
    def tokens(self) -> Path:
        return self.folder / "tokens.csv"

    def token(self, user: str) -> str:
        for line in self.tokens.read_text().splitlines():
            token, name = line.split(",")[:2]
            if name == user:
                return token
        raise KeyError(user)


# Static tokens for the control plane's own clients; the operator never uses these.
TOKEN_USERS = (
    ("admin", "admin", "system:masters"),
    ("system:kube-controller-manager", "kcm", ""),
    ("system:kube-scheduler", "scheduler", ""),
)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def ensure_pki(folder: Path) -> Pki:
    pki = Pki(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not pki.ca_cert.exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/CN=glideslope-sandbox-ca", "-keyout", str(pki.ca_key), "-out", str(pki.ca_cert))
    if not pki.server_cert.exists():
        csr = folder / "apiserver.csr"
        ext = folder / "apiserver.ext"
        ext.write_text("subjectAltName=" + ",".join(SERVER_SANS) + "\n"
                       "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
                 "-keyout", str(pki.server_key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
                 "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(pki.server_cert))
    if not pki.sa_key.exists():
        _openssl("genrsa", "-out", str(pki.sa_key), "2048")
        _openssl("rsa", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    if not pki.tokens.exists():
        rows = []
        for user, uid, group in TOKEN_USERS:
            row = f"{secrets.token_hex(24)},{user},{uid}"
            rows.append(row + (f',"{group}"' if group else ""))
        pki.tokens.write_text("\n".join(rows) + "\n")
        pki.tokens.chmod(0o600)
    return pki


def kubeconfig(server: str, ca_cert: Path, user: str, token: str, namespace: str = "default") -> str:
    """A kubeconfig with one cluster, one user and one context, all named `sandbox`."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: {server}
    certificate-authority: {ca_cert}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: {user}
    namespace: {namespace}
current-context: sandbox
"""
