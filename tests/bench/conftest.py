"""Benchmarks run on the sandbox like the e2e tests, with the same fixtures, plus the anchors'
controllers (Argo Rollouts, Flagger) for the side-by-side comparisons."""

from tests.bench.argo import argo, argo_namespace  # noqa: F401
from tests.bench.flagger import flagger, flagger_namespace, traffic_hold  # noqa: F401
from tests.bench.scrape_phase import scrape_phase  # noqa: F401
from tests.e2e.conftest import namespace, sandbox  # noqa: F401
