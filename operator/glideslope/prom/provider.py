"""The interface the engine measures triggers and metric gates through; one file per backend."""

from __future__ import annotations

from typing import Protocol

from glideslope.core.analysis import Measurement


class MetricProvider(Protocol):
    """A source of single numbers for PromQL-like queries.

    Implementations never raise for problems on the metrics side (unreachable, refused
    query, odd result): those come back as a `Measurement` with `error` set, so that a
    failing backend is a measurement the core can count, never a crash of the operator.
    """

    async def query(self, query: str) -> Measurement:
        """Evaluate `query` now: one number, no data (`value` None), or an error."""
        ...

    async def check(self, query: str) -> str | None:
        """The backend's own reason for refusing `query` as malformed (the operator reports
        it as an invalid spec), or None if it did not refuse it, including when it could
        not be asked (the measurements will then report the error)."""
        ...

    async def is_online(self) -> bool:
        """Whether the backend answers queries (with the credentials given)."""
        ...
