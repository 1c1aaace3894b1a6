"""`Tick`: one decision as it is being made.

The phases of `decide` (commands, verdicts, gates, steps, rollback) each read what they were
given and add to one draft: the status, the announcements, the replicas and the traffic. They
share this object instead of a dozen parameters and out-parameters each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from glideslope.api import ReleaseSpec, ReleaseStatus
from glideslope.core.model import Announce, Observation, Reason, SetTraffic, Step
from glideslope.core.revision import revision_of
from glideslope.core.strategies import StrategyModule, strategy_for

HANDOVER_SECONDS = 2.0
"""Pods that traffic just left keep running this long: a Service's new selector reaches
EndpointSlices and proxies a moment after it is written."""


@dataclass
class Tick:
    """What one call of `decide` was given (never changed) and what it has decided so far."""

    spec: ReleaseSpec
    before: ReleaseStatus
    """The status as stored; `status` is the draft made from it."""
    observation: Observation
    now: datetime
    strategy: StrategyModule
    steps: tuple[Step, ...]
    """The strategy's plan for `spec`."""
    candidate: str
    """The revision of `spec.template`."""
    status: ReleaseStatus
    """The status to write: a copy of `before`, changed by each phase."""
    events: list[Announce] = field(default_factory=list)
    """The announcements, in the order they happened."""
    replicas: dict[str, int] = field(default_factory=dict)
    """Desired replicas by revision; the revisions left out are older ones (`decide` adds them)."""
    traffic: SetTraffic | None = None
    """Where traffic goes; None: nothing exists to send it to yet."""
    restart: str | None = None
    """A restart's token: the revisions that keep pods get new ones (`RestartRevision`)."""
    settled: bool = True
    """Whether the current step began `HANDOVER_SECONDS` ago or more: pods that traffic left may go."""

    @classmethod
    def begin(cls, spec: ReleaseSpec, stored: ReleaseStatus, observation: Observation, now: datetime) -> Tick:
        strategy = strategy_for(spec)
        return cls(spec=spec, before=stored, observation=observation, now=now, strategy=strategy,
                   steps=strategy.plan(spec), candidate=revision_of(spec.template),
                   status=stored.model_copy(deep=True))

    @property
    def pinned(self) -> bool:
        """Whether the stable Service selects one revision (else every one: a replica ratio)."""
        return self.strategy.pins_active(self.spec)

    def announce(self, reason: Reason, message: str, *, warning: bool = False, trigger: str | None = None) -> None:
        self.events.append(Announce(reason, message, warning=warning, trigger=trigger))
