"""Gates: the pre-deployment checklist and its later stages. One module per gate kind
(`approval`, `window`, `metric`, `release`, `job`, `webhook`), each turning what the shell
observed into a gate state; `checklist` runs a stage of them. Pure, like the rest of `core/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from glideslope.api import GateState
from glideslope.core.analysis import Measurement


@dataclass(frozen=True)
class Check:
    """The outcome of one look at a gate."""

    state: GateState
    message: str
    value: float | None = None


@dataclass(frozen=True)
class JobObservation:
    """A gate's Job as the shell found it (None in `Observation.gates` while it does not exist)."""

    name: str
    namespace: str
    succeeded: bool = False
    failed: bool = False
    reason: str | None = None
    """Why it failed, from the Job's Failed condition."""


@dataclass(frozen=True)
class ReleaseObservation:
    """Another Release as the shell found it."""

    found: bool
    phase: str | None = None
    version: str | None = None
    stable_version: str | None = None
    error: str | None = None
    """Why it could not be read (forbidden, API error); None when `found` says it all."""


@dataclass(frozen=True)
class WebhookAnswer:
    """The last answer of a gate's webhook, after retries."""

    status: int | None
    error: str | None = None


GateObservation = Measurement | JobObservation | ReleaseObservation | WebhookAnswer
