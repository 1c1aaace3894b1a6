# The operator image: `glideslope operator` as a non-root user, no build tools, and a root
# filesystem that may be mounted read-only (nothing is written outside /tmp).
# Both stages are pinned by digest, so a rebuild gets the same base, whatever the tag points to
# now; bump BASE deliberately (and review what changed) to take a newer base.
ARG BASE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/glideslope
COPY constraints.txt pyproject.toml README.md ./
# operator/glideslope/sandbox/ (a developer tool that builds Kubernetes and runs a local cluster)
# is kept out by .dockerignore, so the wheel has no sandbox; `pip install -e .` in a checkout
# still has it. The checks fail the build if it slipped in, or if the CLI cannot start without it.
COPY operator/ operator/
RUN /opt/glideslope/bin/pip install --no-cache-dir -c constraints.txt . \
    && /opt/glideslope/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('glideslope.sandbox') is not None)" \
    && /opt/glideslope/bin/python -c "import glideslope.operator_main" \
    && /opt/glideslope/bin/glideslope --help >/dev/null \
    && /opt/glideslope/bin/glideslope operator --help >/dev/null \
    && /opt/glideslope/bin/python -m compileall -q /opt/glideslope

FROM ${BASE}
LABEL org.opencontainers.image.title="glideslope" \
      org.opencontainers.image.description="Safe production releases on Kubernetes"
ENV PATH=/opt/glideslope/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/glideslope /opt/glideslope
# A numeric UID so `runAsNonRoot` can verify it without an /etc/passwd entry.
USER 65532:65532
EXPOSE 8080 9102
ENTRYPOINT ["glideslope", "operator"]
CMD ["--all-namespaces"]
