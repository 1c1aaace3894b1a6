"""Gate probes: the shell's I/O side of the gates that wait for an answer from outside.

`observe` looks at the gates `core.gates.checklist.due` names (one module per kind that needs
I/O: `job`, `release`, `webhook`; metric gates are measured by the engine's Prometheus
provider) and returns what it found, for `decide` to judge. A look that fails is logged and
left out: the gate keeps waiting (and its timeout, if any, still runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from glideslope.api import Gate, Release
from glideslope.core.analysis import Measurement
from glideslope.core.gates import GateObservation
from glideslope.egress import Egress
from glideslope.kube.client import Kube
from glideslope.logs import get_logger
from glideslope.probes import job, release, webhook

log = get_logger(__name__)

Measure = Callable[[Mapping[str, str]], Mapping[str, Measurement]]
"""Gate name -> resolved query, to gate name -> measurement."""


def observe(kube: Kube, subject: Release, due: Sequence[Gate], now: datetime, *,
            queries: Mapping[str, str], measure: Measure | None, egress: Egress) -> dict[str, GateObservation]:
    """What the due gates say now; a gate whose answer has not come yet is left out. `queries`
    holds the metric gates' resolved queries."""
    out: dict[str, GateObservation] = {}
    wanted = {g.name: queries[g.name] for g in due if g.metric is not None and g.name in queries}
    if wanted and measure is not None:
        out.update(measure(wanted))
    for gate in due:
        try:
            if gate.release is not None:
                out[gate.name] = release.observe(kube, subject, gate.release)
            elif gate.job is not None:
                found = job.observe(kube, subject, gate.name, gate.job)
                if found is not None:
                    out[gate.name] = found
            elif gate.webhook is not None:
                answer = webhook.ask(egress, kube, subject, gate.name, gate.webhook)
                if answer is not None:
                    out[gate.name] = answer
        except Exception:
            # The next tick looks again; a broken gate must not stop the reconcile of the rest.
            log.exception("gate: could not look", gate=gate.name)
    return out
