"""In-job profiling: a rank measures its own computations inside the training loop.

`InJobProfile` holds the options; `InJobProfiler` is the state one `PerseusHook` keeps while
its rank profiles. The decisions (which clock each iteration runs at, warm-up, outlier removal,
early stop) are the C++ profiler's (`perseus.FrequencySweep`): an iteration runs every
computation at one clock, from the highest down; the first `warmup_iterations` at a clock are
not measured, the next `measure_iterations` are; the sweep stops early once every kind's energy
has stayed above its lowest for `patience` clocks in a row.

What is measured. A computation's time and energy are read from the hook's device (`now()`,
`energy_mj()`) when it begins and ends; with `synchronize` (e.g. torch.cuda.synchronize) the
hook synchronises at both ends, during profiling iterations only, so the readings bracket the
GPU's work. (CUDA events would time a computation without a synchronisation, but NVML's energy
counter is read by the host: attributing energy to one computation needs the host to know when
it ran, hence the synchronisation; it costs only the profiling iterations.) The blocking power
is what the GPU draws between computations, while it waits on communication: the step's energy
less its computations', over the step's time less theirs, the median over measured iterations.

A rank holding several model chunks (interleaved schedules) measures each chunk's computations;
the planner's profile has one row per pipeline stage (which it cuts into chunks), so a row is
the chunk mean times the chunks the rank holds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set

from ._perseus import FrequencySweep, InvalidInputError

PROFILED_KINDS = ("forward", "backward", "backward_input", "backward_weight")


@dataclass(frozen=True)
class InJobProfile:
    """Options of in-job profiling (`PerseusHook(profile=...)`).

    `frequencies_mhz`: the clocks to sweep (e.g. the device's supported SM clocks; a subset
    shortens profiling). `kinds`: the computation kinds this rank runs on their own (an
    overlapped forward+backward is not measured: the planner derives it from its halves)."""

    frequencies_mhz: Sequence[int]
    kinds: Sequence[str] = ("forward", "backward")
    warmup_iterations: int = 1
    measure_iterations: int = 3
    patience: int = 5
    outlier_threshold: float = 3.5

    @property
    def max_iterations(self) -> int:
        """Iterations profiling takes at most (fewer when the sweep stops early)."""
        return len(set(self.frequencies_mhz)) * (self.warmup_iterations +
                                                 self.measure_iterations)


class InJobProfiler:
    """One rank's sweep across iterations. Raises InvalidInputError for bad options."""

    def __init__(self, options: InJobProfile) -> None:
        kinds = list(options.kinds)
        unknown = [k for k in kinds if k not in PROFILED_KINDS]
        if unknown or not kinds:
            raise InvalidInputError(
                f"in-job profiling: kinds must be a non-empty list of {PROFILED_KINDS}, got "
                f"{kinds!r}")
        self.options = options
        self._kinds = set(kinds)
        self._sweep = FrequencySweep(list(options.frequencies_mhz), kinds,
                                     warmup=options.warmup_iterations,
                                     iterations=options.measure_iterations,
                                     patience=options.patience,
                                     outlier_threshold=options.outlier_threshold)
        self.iterations = 0  # profiling iterations ended
        self._chunks: Set[int] = set()
        self._step_start = (0.0, 0)
        self._instruction_start = (0.0, 0)
        self._busy_s = 0.0
        self._busy_mj = 0
        self._idle_power_w: List[float] = []

    @property
    def done(self) -> bool:
        return bool(self._sweep.done)

    @property
    def frequency_mhz(self) -> int:
        """The clock this iteration's computations run at (0 once done)."""
        return int(self._sweep.frequency)

    @property
    def progress(self) -> float:
        return float(self._sweep.progress)

    @property
    def stopped_early_at(self) -> int:
        return int(self._sweep.stopped_early_at)

    def begin_step(self, now: float, energy_mj: int) -> None:
        self._step_start = (now, energy_mj)
        self._busy_s, self._busy_mj = 0.0, 0

    def begin_instruction(self, now: float, energy_mj: int) -> None:
        self._instruction_start = (now, energy_mj)

    def end_instruction(self, kind: str, stage: Optional[int], now: float,
                        energy_mj: int) -> None:
        time_s = now - self._instruction_start[0]
        energy_mj_used = energy_mj - self._instruction_start[1]
        self._busy_s += time_s
        self._busy_mj += energy_mj_used
        if stage is not None:
            self._chunks.add(stage)
        if kind in self._kinds and self._sweep.measuring:
            self._sweep.record(kind, max(time_s, 1e-9), max(energy_mj_used, 0) / 1000.0)

    def end_step(self, now: float, energy_mj: int) -> bool:
        """Ends a profiling iteration; True once the sweep is done."""
        if self._sweep.measuring:
            idle_s = (now - self._step_start[0]) - self._busy_s
            idle_mj = (energy_mj - self._step_start[1]) - self._busy_mj
            # Only gaps long enough to read (1 ms and 2% of the step): shorter ones are noise.
            if idle_s > max(1e-3, 0.02 * (now - self._step_start[0])) and idle_mj >= 0:
                self._idle_power_w.append(idle_mj / 1000.0 / idle_s)
        self._sweep.end_iteration()
        self.iterations += 1
        return self.done

    def blocking_power_w(self) -> Optional[float]:
        """The median power between computations (None: no measured gap was long enough)."""
        return statistics.median(self._idle_power_w) if self._idle_power_w else None

    def rows(self) -> List[Dict[str, Any]]:
        """The sweep's rows as the coordinator's measurements, per pipeline stage."""
        chunks = max(1, len(self._chunks))
        return [{"instruction": r.kind, "frequency_mhz": int(r.frequency_mhz),
                 "time_s": float(r.time_s) * chunks, "energy_j": float(r.energy_j) * chunks}
                for r in self._sweep.rows]
