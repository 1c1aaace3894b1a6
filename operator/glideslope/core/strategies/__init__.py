"""One module per strategy, each with the same small interface (see `StrategyModule`)."""

from __future__ import annotations

from typing import Protocol

from glideslope.api import ReleaseSpec, StrategyType
from glideslope.core.model import Step, Target, View


class StrategyModule(Protocol):
    """What the engine needs of a strategy; every function is pure."""

    def plan(self, spec: ReleaseSpec) -> tuple[Step, ...]:
        """The steps of a rollout, in order."""
        ...

    def target(self, spec: ReleaseSpec, steps: tuple[Step, ...], index: int, view: View) -> Target:
        """The desired state while step `index` (0-based) runs, and whether it is done."""
        ...

    def full_step(self, steps: tuple[Step, ...]) -> int:
        """The step `promote full` jumps to (0-based)."""
        ...

    def pins_active(self, spec: ReleaseSpec) -> bool:
        """Whether the stable Service selects one revision (else every revision: replica ratio)."""
        ...

    def takes_old_down_first(self, spec: ReleaseSpec) -> bool:
        """Whether the old revisions go to zero before the candidate comes up (downtime by
        design): the downtime is recorded, and no older revision is kept for capacity."""
        ...


def strategy_for(spec: ReleaseSpec) -> StrategyModule:
    # Imported here: each module imports this package for the interface.
    from glideslope.core.strategies import bigbang, bluegreen, canary, rolling

    modules: dict[StrategyType, StrategyModule] = {
        StrategyType.CANARY: canary, StrategyType.BLUE_GREEN: bluegreen,
        StrategyType.ROLLING: rolling, StrategyType.BIG_BANG: bigbang,
    }
    return modules[spec.strategy.type]
