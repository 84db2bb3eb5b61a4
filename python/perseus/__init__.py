"""Perseus: energy scheduling for pipeline-parallel training.

The planner computes a job's iteration time-energy frontier from a profile;
the GPU runtime sets each computation's SM clock without stalling training;
the client follows the plans `perseus serve` hands out.

    import perseus
    frontier = perseus.plan("profile.csv", stages=8, microbatches=12, tp=8,
                            blocking_power_w=83.64)
    fastest = frontier.points[frontier.t_min_index]
    per_rank = frontier.plan(frontier.t_min_index)   # [[{kind, microbatch, stage, frequency_mhz}]]

Errors raise PerseusError subclasses, each also a built-in exception:
InvalidInputError (ValueError), NotFoundError (LookupError),
PermissionDeniedError (PermissionError), UnavailableError (ConnectionError),
InternalError (RuntimeError).
"""

from contextlib import contextmanager
from typing import Iterator

from ._version import __version__  # noqa: F401  (written by the build)

from ._perseus import (  # noqa: F401  (re-exported)
    Client,
    ClockEvent,
    Device,
    FrequencyController,
    FrequencySweep,
    Frontier,
    FrontierPoint,
    GpudBackend,
    GpuRuntime,
    InternalError,
    InvalidInputError,
    MeasurementWindow,
    NotFoundError,
    NvmlBackend,
    PermissionDeniedError,
    PerseusError,
    SimBackend,
    SimGpu,
    SweepRow,
    UnavailableError,
    emulate,
    open_backend,
    plan,
)

from . import devices  # noqa: E402,F401  (perseus.devices: CUDA device -> NVML GPU)

__all__ = [
    "Client", "ClockEvent", "Device", "FrequencyController", "FrequencySweep", "Frontier",
    "FrontierPoint", "GpudBackend", "GpuRuntime", "InternalError", "InvalidInputError",
    "MeasurementWindow", "NotFoundError", "NvmlBackend", "PermissionDeniedError", "PerseusError",
    "SimBackend", "SimGpu", "SweepRow", "UnavailableError", "__version__", "devices", "emulate",
    "measure", "open_backend", "plan",
]


class Measurement:
    """Filled by `measure` when its block ends."""

    time_s: float = 0.0
    energy_j: float = 0.0


@contextmanager
def measure(device: Device) -> Iterator[Measurement]:
    """Measures the time and energy of the work in the `with` block on `device`.

    For a real GPU the work must have finished on the device when the block
    ends (synchronise the stream first).
    """
    window = MeasurementWindow(device)
    result = Measurement()
    window.begin()
    yield result
    result.time_s, result.energy_j = window.end()
