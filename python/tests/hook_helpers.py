"""A PerseusHook for the framework integration tests that records what it was told."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from perseus.torch import PerseusHook


class RecordingHook(PerseusHook):
    """The real, strict PerseusHook, also recording what it was told."""

    def __init__(self, plan: Sequence[Dict[str, Any]], rank: int = 0) -> None:
        self.applied: List[int] = []  # the clocks it set, in order
        super().__init__(plan=plan, set_frequency=self.applied.append, strict=True, rank=rank)
        self.seen: List[Tuple[str, Optional[int], int]] = []  # (kind, stage, microbatch), last step
        self.unplanned = 0

    def on_step_begin(self) -> None:
        super().on_step_begin()
        self.seen = []

    def on_instruction_begin(self, kind: str, microbatch: int, stage: Optional[int] = None) -> int:
        mhz = super().on_instruction_begin(kind, microbatch, stage)
        self.seen.append((kind, stage, microbatch))
        return mhz

    def on_unplanned_work(self) -> Optional[int]:
        self.unplanned += 1
        return super().on_unplanned_work()
