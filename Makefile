# The README's two commands: `make demo` and `make test`. Both set up everything they
# need on a fresh machine: Debian packages, the virtualenv, the Go-built Kubernetes
# binaries (cached in ~/.cache/glideslope, so only the first run pays) and the sandbox.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
SANDBOX ?= .sandbox
PY := $(VENV)/bin/python
GLIDESLOPE := $(VENV)/bin/glideslope
E2E_WORKERS ?= 4
# Each fault test SIGKILLs and restarts its own operator: two at a time fit a 2-core machine.
FAULT_WORKERS ?= 2

.PHONY: help
help:
	@echo "make demo      a real local cluster, Prometheus and simulated traffic, shown live"
	@echo "make test      lint, unit and e2e tests on a fresh sandbox (what CI runs)"
	@echo "make lint      ruff, mypy and the layering contract"
	@echo "make unit      unit tests only"
	@echo "make e2e       e2e tests against a running sandbox (make up first)"
	@echo "make up/down   start/stop the sandbox in $(SANDBOX)/"
	@echo "make binaries  build the Kubernetes, etcd and kwok binaries into the cache"
	@echo "make anchors   build Argo Rollouts' and Flagger's controllers (bench anchors) into the cache"
	@echo "make bench     benchmarks on the sandbox (breach-to-rollback time, scale)"
	@echo "make bench-compare  breach to rollback beside Argo Rollouts, same sandbox, same run"
	@echo "make bench-judge  the statistical judge beside a static threshold: 30 real canaries per case on a sandbox (~30 min)"
	@echo "make bench-judge-offline  the same cases through the traffic model and the judge's core, no cluster (seconds)"
	@echo "make test-faults  fault injection on a fresh sandbox (not part of make test)"
	@echo "make crds      regenerate crds/ (and the chart's copy) from the models"
	@echo "make docs      regenerate docs/api.md, the Release API's reference, from the models"
	@echo "make manifests regenerate deploy/ from the Helm chart"

# System packages: openssl (sandbox certificates), Prometheus (Debian's package; promtool
# checks the alert rules) and Lua (runs the Argo CD health check in its test).
# Go must be >= 1.24 to build Kubernetes 1.34; Debian bookworm's golang-go is too old.
.PHONY: system-deps
system-deps:
	@command -v go >/dev/null || { echo "Go >= 1.24 is needed to build the sandbox binaries"; exit 1; }
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v lua5.4 >/dev/null || missing="$$missing lua5.4"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: install
install: system-deps $(VENV)/.installed

.PHONY: binaries
binaries: install
	$(GLIDESLOPE) build

# The benchmark's anchors, built from the Go module proxy like the sandbox's binaries.
.PHONY: anchors
anchors: install
	$(GLIDESLOPE) build --anchors

.PHONY: lint
lint: install
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

.PHONY: unit
unit: install
	$(VENV)/bin/pytest -m unit -q

.PHONY: up
up: binaries
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX)

.PHONY: down
down:
	@if [ -x $(GLIDESLOPE) ]; then $(GLIDESLOPE) sandbox down --dir $(SANDBOX); fi

.PHONY: status
status: install
	$(GLIDESLOPE) sandbox status --dir $(SANDBOX)

.PHONY: e2e
e2e: install
	GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m e2e -q -n $(E2E_WORKERS)

# The models are the one source of the CRD; the chart carries a copy (Helm installs crds/).
# Benchmarks print figures and write JSON to tests/bench/results/; they assert no time.
.PHONY: bench
bench: binaries
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev,bench]'
	@status=0; \
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m bench tests/bench -s -q \
	    --ignore=tests/bench/test_compare_rollback.py --ignore=tests/bench/test_compare_crash.py \
	    --ignore=tests/bench/test_compare_scale.py --ignore=tests/bench/test_judge.py \
	    --ignore=tests/bench/test_judge_offline.py || status=$$?; \
	fi; \
	if [ -z "$${KEEP_SANDBOX:-}" ]; then $(GLIDESLOPE) sandbox down --dir $(SANDBOX); fi; \
	exit $$status

# The statistical judge beside a static threshold: 150 real canaries on a fresh sandbox, in
# batches (GLIDESLOPE_BENCH_JUDGE_RUNS, GLIDESLOPE_BENCH_JUDGE_BATCH), about half an hour.
.PHONY: bench-judge
bench-judge: binaries
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev,bench]'
	@status=0; \
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m bench tests/bench/test_judge.py -s -q \
	    -p no:cacheprovider || status=$$?; \
	fi; \
	if [ -z "$${KEEP_SANDBOX:-}" ]; then $(GLIDESLOPE) sandbox down --dir $(SANDBOX); fi; \
	exit $$status

# The same cases offline (the sandbox's traffic model and the judge's core; no cluster), as a
# cross-check: seconds instead of half an hour.
.PHONY: bench-judge-offline
bench-judge-offline: install
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev,bench]'
	$(VENV)/bin/pytest -m bench tests/bench/test_judge_offline.py -s -q -p no:cacheprovider

# Glideslope side by side with Argo Rollouts (and, next, Flagger) in the same sandbox and run;
# the anchors are built once from the Go module proxy (`make anchors`).
.PHONY: bench-compare
bench-compare: binaries anchors
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev,bench]'
	@status=0; \
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m bench tests/bench/test_compare_rollback.py tests/bench/test_compare_crash.py \
	    tests/bench/test_compare_scale.py -s -q \
	    || status=$$?; \
	fi; \
	if [ -z "$${KEEP_SANDBOX:-}" ]; then $(GLIDESLOPE) sandbox down --dir $(SANDBOX); fi; \
	exit $$status

# Fault injection on a fresh sandbox, stopped whatever the outcome: the operator killed at every
# step, the Release deleted, scaled, re-applied; then, alone, Prometheus and kube-apiserver
# restarted (they disturb whoever shares the sandbox), the noisy neighbour (its timing
# comparison must not share the CPU with another fault test) and the CRD upgrade (it swaps the
# cluster-wide CRD).
.PHONY: test-faults
test-faults: binaries
	@status=0; \
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m faults tests/faults -q -n $(FAULT_WORKERS) \
	    --ignore=tests/faults/test_disruptive.py --ignore=tests/faults/test_noisy_neighbour.py \
	    --ignore=tests/faults/test_crd_upgrade.py || status=$$?; \
	fi; \
	if [ $$status -eq 0 ]; then \
	  GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m faults tests/faults/test_disruptive.py \
	    tests/faults/test_noisy_neighbour.py tests/faults/test_crd_upgrade.py -q || status=$$?; \
	fi; \
	if [ -z "$${KEEP_SANDBOX:-}" ]; then $(GLIDESLOPE) sandbox down --dir $(SANDBOX); fi; \
	if [ $$status -ne 0 ]; then echo "make test-faults: FAILED (exit $$status)"; fi; \
	exit $$status

.PHONY: crds
crds: install
	$(GLIDESLOPE) crd > crds/glideslope.dev_releases.yaml
	$(GLIDESLOPE) crd --kind AnalysisTemplate > crds/glideslope.dev_analysistemplates.yaml
	$(GLIDESLOPE) crd --kind ClusterAnalysisTemplate > crds/glideslope.dev_clusteranalysistemplates.yaml
	cp crds/glideslope.dev_*.yaml charts/glideslope/crds/

# docs/api.md is generated like the CRD (from the same models, and the code it names); a unit
# test fails when it is stale.
.PHONY: docs
docs: install
	@mkdir -p docs
	$(GLIDESLOPE) docs > docs/api.md

# The chart is the one source of the RBAC and the operator Deployment; deploy/ is rendered.
.PHONY: manifests
manifests: binaries
	$(PY) -m glideslope.sandbox.manifests

# Lint and unit tests first (fast failures), then e2e on a fresh sandbox that is stopped
# whatever the outcome. pytest's exit code 5 (no tests collected) fails like any other.
.PHONY: test
test: lint binaries unit
	@status=0; \
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  GLIDESLOPE_SANDBOX_DIR=$(SANDBOX) $(VENV)/bin/pytest -m e2e -q -n $(E2E_WORKERS) || status=$$?; \
	fi; \
	if [ -z "$${KEEP_SANDBOX:-}" ]; then $(GLIDESLOPE) sandbox down --dir $(SANDBOX); fi; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (exit $$status)"; fi; \
	exit $$status

.PHONY: demo
demo: binaries
	$(GLIDESLOPE) sandbox up --dir $(SANDBOX)
	$(PY) -m glideslope.sandbox.demo --dir $(SANDBOX)

.PHONY: clean
clean: down
	rm -rf $(SANDBOX) $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The krew plugin's archive (dist/) and its sha256 in plugins/release.yaml.
.PHONY: krew
krew: install
	$(VENV)/bin/python -m glideslope.sandbox.krew
