"""Measured traffic convergence (`trafficRouting.verify`): a weight counts as reached only once
the candidate's measured share of requests matches it. Pure, like the rest of `core/`.

Decisions recorded here:

- The share is the candidate's request rate over the candidate's, the stable revision's and the
  judge's baseline's (whose pods carry a revision label of their own) together, in percent
  (`share`): the candidate's share of all requests, which is what a weight is.
- It says anything only with enough requests: at least `MIN_RATE` requests per second on the
  two revisions together. Fewer (a quiet service, a query that matches nothing) and the weight
  is not reached: the step waits, and past `timeoutSeconds` rolls back. Verify needs traffic.
- What it is compared with (`expected`): the weight, with a router; with the replica ratio, the
  candidate's share of the Ready pods of both revisions and the baseline (whose pods join the
  stable Service), which is how the Services split.
- Within `tolerance` percentage points; but when one revision is to get no traffic at all (a
  weight of 0 or 100: its pods go next), within `DRAINED_POINTS`, whatever the tolerance.
- A measurement taken before the weight was set says nothing of it. Once one matches,
  `status.weightSetAt` is cleared: the weight is reached, and later measurements only show.
- `timeoutSeconds` after the weight was set without a match, the rollout rolls back with reason
  `TrafficNotConverged`; the rollback moves both Services to the stable revision, so it serves
  every request even through a route that ignores its weights. With `rollback.automatic: false`
  it pauses instead (`status.pausedBy`), as a failed trigger would. A paused rollout does not time
  out; the timeout starts again at the pause.
"""

from __future__ import annotations

from datetime import timedelta

from glideslope.api import ROLLING_OUT_PHASES, ReleaseSpec, TrafficVerify
from glideslope.core.decide.rollback import roll_back
from glideslope.core.decide.tick import Tick
from glideslope.core.model import Reason, TrafficSample

MIN_RATE = 1.0
"""Requests per second, on the candidate and stable revisions together, below which a
measured share says nothing (a handful of requests can show any split)."""
DRAINED_POINTS = 1.0
"""How far from 0 or 100 percent a share may be when one revision is to get no traffic."""
MEASURE_EVERY = 1.0
"""Seconds between measurements while a weight waits for its share (`wake_at`)."""


def verify_of(spec: ReleaseSpec) -> TrafficVerify | None:
    canary = spec.strategy.canary
    return canary.traffic_routing.verify if canary and canary.traffic_routing else None


def share(sample: TrafficSample) -> float | None:
    """The candidate's share of requests in percent; None: an error, or too few requests."""
    if sample.error is not None or sample.candidate is None or sample.stable is None:
        return None
    total = sample.candidate + sample.stable + sample.baseline
    if not total >= MIN_RATE:  # also NaN
        return None
    return min(max(100.0 * sample.candidate / total, 0.0), 100.0)


def converged(measured: float, expected: float, tolerance: float) -> bool:
    """Whether a measured share (percent) matches the expected one."""
    if expected <= 0.0 or expected >= 100.0:
        tolerance = min(tolerance, DRAINED_POINTS)
    return abs(measured - expected) <= tolerance


def expected(tick: Tick) -> float:
    """The share the current weight should show (the module's docstring says which)."""
    if tick.pinned:
        return float(tick.status.weight or 0)
    stable = tick.status.stable_revision
    candidate_ready, stable_ready = tick.observation.ready(tick.candidate), tick.observation.ready(stable)
    baseline = tick.observation.baselines.get(stable or "")
    total = candidate_ready + stable_ready + (baseline.ready if baseline is not None else 0)
    return 100.0 * candidate_ready / total if total else float(tick.status.weight or 0)


def measure(tick: Tick) -> None:
    """Record the measured share; clear `weightSetAt` once it matches; roll back on timeout.
    Runs before the step does (it judges the weight the step set on an earlier tick)."""
    status, now = tick.status, tick.now
    verify = verify_of(tick.spec)
    if verify is None:
        status.measured_weight = status.weight_set_at = None
        return
    sample = tick.observation.traffic
    measured = share(sample) if sample is not None else None
    if measured is not None:
        status.measured_weight = round(measured)
    if status.phase not in ROLLING_OUT_PHASES or status.stable_revision in (None, tick.candidate):
        # Measured only while a rollout moves traffic: what a finished one measured is past.
        status.measured_weight = status.weight_set_at = None
        return
    since = status.weight_set_at
    if since is None:
        return
    wanted = expected(tick)
    if measured is not None and sample is not None and sample.at >= since and converged(
            measured, wanted, verify.tolerance):
        status.weight_set_at = None
        return
    paused = tick.spec.paused or status.paused_by is not None
    if now - since > timedelta(seconds=verify.timeout_seconds) and not paused:
        seen = "no measurement with enough requests" if status.measured_weight is None else \
            f"{status.measured_weight}% measured"
        why = (f"traffic did not converge: {seen} on the candidate, for a weight of {wanted:g}% "
               f"(tolerance {verify.tolerance} points), within {verify.timeout_seconds}s")
        if sample is not None and sample.error is not None:
            why += f"; last measurement: {sample.error}"
        if not tick.spec.rollback.automatic:
            # A person decides; after `resume` the weight gets `timeoutSeconds` again.
            status.paused_by, status.weight_set_at = why[:256], now
            tick.announce(Reason.TRAFFIC_NOT_CONVERGED, f"rollout of {status.version} ({status.revision}) "
                          f"paused (rollback.automatic is false): {why}", warning=True)
            return
        roll_back(tick, status.revision, why)
        status.weight_set_at = None
        tick.announce(Reason.TRAFFIC_NOT_CONVERGED, f"rolling back {status.version} ({status.revision}): {why}",
                      warning=True)


def note_change(tick: Tick) -> None:
    """After the step: a weight that changed this tick waits for its share from now."""
    status = tick.status
    if verify_of(tick.spec) is None or status.phase not in ROLLING_OUT_PHASES:
        return
    if status.weight != tick.before.weight:
        status.weight_set_at = tick.now


def pending(tick: Tick) -> str | None:
    """Why the current step cannot end yet: its weight has not been measured yet; None: it has
    (or nothing is verified)."""
    status = tick.status
    verify = verify_of(tick.spec)
    if verify is None or (status.weight_set_at is None and status.weight == tick.before.weight):
        return None
    measured = "not measured yet" if status.measured_weight is None else f"{status.measured_weight}% measured"
    return f"waiting for traffic: {measured}, weight {status.weight or 0}% ± {verify.tolerance}"
