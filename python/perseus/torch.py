"""Perseus for PyTorch pipeline engines.

A `PerseusHook` sits in a training loop's pipeline executor. Before each
forward/backward it sets the GPU's planned SM clock for that computation; at
each step's end it reports the iteration's time and energy to `perseus serve`.

    hook = perseus.torch.PerseusHook(client=client, set_frequency=controller.set,
                                     device=gpu)
    hook.on_step_begin()
    for kind, microbatch in my_schedule:           # "forward"/"backward", 0..M-1
        hook.on_instruction_begin(kind, microbatch)
        run(kind, microbatch)
        hook.on_instruction_end(kind, microbatch)
    hook.on_step_end()

Synchronisation. CUDA kernels run asynchronously: the CPU launches a
computation and moves on, so a clock set "before" a computation takes effect
when the CPU gets there, possibly while the previous computation still runs
on the GPU. The hook does not synchronise by default: clocks change at
computation boundaries as seen by the CPU, and the FrequencyController's
set() returns in well under a microsecond, so the training loop never stalls.
Pass `synchronize=torch.cuda.synchronize` to make each change land exactly at
the GPU-side boundary; the hook then synchronises only when the clock actually
changes (consecutive computations at the same clock cost nothing), and at
step ends, where measuring time and energy needs the GPU to be done anyway.

Megatron-LM: call `on_instruction_begin("forward", microbatch)` and
`on_instruction_end` around `forward_step(...)` in
`megatron/core/pipeline_parallel/schedules.py`'s `forward_step`, and
`"backward"` around `backward_step(...)`; `on_step_begin`/`on_step_end` around
`forward_backward_func` in `train_step`. Microbatch indices: count the calls
per kind (Megatron does not pass them).

DeepSpeed: in `deepspeed/runtime/pipe/engine.py`, `PipelineEngine._exec_schedule`
runs `ForwardPass` and `BackwardPass` instructions; announce them with
`cmd.buffer_id`-independent microbatch counters:

    if isinstance(cmd, schedule.ForwardPass):
        hook.on_instruction_begin("forward", fwd_count); ...; fwd_count += 1
    elif isinstance(cmd, schedule.BackwardPass):
        hook.on_instruction_begin("backward", bwd_count); ...; bwd_count += 1

torch.distributed.pipelining (torch >= 2.4): `wrap_schedule(schedule, hook)`.
"""

import time
from typing import Callable, List, Optional, Sequence, Tuple

from . import InvalidInputError

__all__ = ["PerseusHook", "PlanMismatchError", "wrap_schedule"]

KINDS = ("forward", "backward", "backward_input", "backward_weight")


class PlanMismatchError(InvalidInputError):
    """The executor announced a computation the plan did not expect next."""


class PerseusHook:
    """Sets planned clocks per computation and reports iterations.

    The plan comes from `client` (a perseus.Client: the coordinator's plan for
    this rank) or `plan` (a list of {kind, microbatch, frequency_mhz} in
    execution order, e.g. one rank of perseus.Frontier.plan(i)). With `strict`,
    a computation announced out of the plan's order raises PlanMismatchError.
    """

    def __init__(self, *, client=None, plan: Optional[Sequence[dict]] = None,
                 set_frequency: Optional[Callable[[int], None]] = None,
                 device=None, synchronize: Optional[Callable[[], None]] = None,
                 strict: bool = True, rank: int = 0,
                 idle_power_w: float = 0.0) -> None:
        if client is None and plan is None:
            raise InvalidInputError("PerseusHook needs a client or a plan")
        self._client = client
        self._static_plan = list(plan) if plan is not None else None
        self._set_frequency = set_frequency
        self._device = device
        self._synchronize = synchronize
        self._strict = strict
        self._rank = rank
        self._position = 0
        self._current_mhz = 0
        self._in_step = False
        self._in_instruction: Optional[Tuple[str, int]] = None
        self._iteration = 0
        self._step_start = 0.0
        self._energy_start = 0
        self.last_iteration: Optional[Tuple[float, float]] = None  # (time_s, energy_j)
        self._client_plan: List[dict] = []
        self._client_version = -1

    def _plan(self) -> List[dict]:
        if self._static_plan is not None:
            return self._static_plan
        return self._client_plan

    def _refresh(self) -> None:
        # A new plan version takes effect at an iteration boundary, never mid-iteration.
        if self._client is not None and self._client.plan_version != self._client_version:
            self._client_version = self._client.plan_version
            self._client_plan = list(self._client.instructions())

    @property
    def plan_version(self) -> int:
        """The coordinator's plan version this iteration runs (0: none yet)."""
        return max(self._client_version, 0)

    def _expected_frequency(self, kind: str, microbatch: int) -> int:
        plan = self._plan()
        if plan and self._strict:
            if self._position >= len(plan):
                raise PlanMismatchError(
                    f"rank {self._rank} announced {kind} {microbatch}, but its plan has only "
                    f"{len(plan)} computations per iteration")
            step = plan[self._position]
            if (step["kind"], step["microbatch"]) != (kind, microbatch):
                raise PlanMismatchError(
                    f"rank {self._rank} announced {kind} {microbatch} as computation "
                    f"{self._position} of the iteration, but the plan expects "
                    f"{step['kind']} {step['microbatch']} there")
            return int(step["frequency_mhz"])
        for step in plan:
            if (step["kind"], step["microbatch"]) == (kind, microbatch):
                return int(step["frequency_mhz"])
        if self._client is not None:
            return int(self._client.frequency_for(kind, microbatch))  # fallback: highest clock
        raise PlanMismatchError(f"the plan has no {kind} {microbatch}")

    def on_step_begin(self) -> None:
        if self._in_step:
            raise PlanMismatchError("on_step_begin called twice without on_step_end")
        self._in_step = True
        self._position = 0
        self._refresh()
        if self._synchronize is not None:
            self._synchronize()
        self._step_start = self._device.now() if self._device is not None else time.monotonic()
        self._energy_start = self._device.energy_mj() if self._device is not None else 0

    def on_instruction_begin(self, kind: str, microbatch: int) -> int:
        """Sets the clock planned for this computation; returns it (MHz)."""
        if kind not in KINDS:
            raise InvalidInputError(f"unknown computation kind {kind!r}: one of {KINDS}")
        if not self._in_step:
            raise PlanMismatchError("on_instruction_begin outside a step (call on_step_begin)")
        if self._in_instruction is not None:
            raise PlanMismatchError(
                f"{kind} {microbatch} begins before {self._in_instruction[0]} "
                f"{self._in_instruction[1]} ended")
        mhz = self._expected_frequency(kind, microbatch)
        if mhz != self._current_mhz and self._set_frequency is not None:
            if self._synchronize is not None:
                self._synchronize()  # only when the clock changes
            self._set_frequency(mhz)
            self._current_mhz = mhz
        self._in_instruction = (kind, microbatch)
        return mhz

    def on_instruction_end(self, kind: str, microbatch: int) -> None:
        if self._in_instruction != (kind, microbatch):
            raise PlanMismatchError(
                f"{kind} {microbatch} ended, but "
                + (f"{self._in_instruction[0]} {self._in_instruction[1]} was running"
                   if self._in_instruction else "no computation was running"))
        self._in_instruction = None
        self._position += 1

    def on_step_end(self, energy_j: Optional[float] = None) -> Tuple[float, float]:
        """Ends the iteration; reports (time_s, energy_j) to the coordinator and returns it.

        `energy_j` overrides the device's energy counter (e.g. to add idle energy
        a simulated GPU does not see)."""
        if not self._in_step:
            raise PlanMismatchError("on_step_end without on_step_begin")
        if self._in_instruction is not None:
            raise PlanMismatchError(
                f"the step ended while {self._in_instruction[0]} {self._in_instruction[1]} ran")
        plan = self._plan()
        if self._strict and plan and self._position != len(plan):
            raise PlanMismatchError(
                f"rank {self._rank} ran {self._position} computations this iteration; its plan "
                f"has {len(plan)}")
        if self._synchronize is not None:
            self._synchronize()
        now = self._device.now() if self._device is not None else time.monotonic()
        elapsed = now - self._step_start
        if energy_j is None:
            energy_j = ((self._device.energy_mj() - self._energy_start) / 1000.0
                        if self._device is not None else 0.0)
        if self._client is not None:
            self._client.end_iteration(self._iteration, elapsed, energy_j)
        self._iteration += 1
        self._in_step = False
        self.last_iteration = (elapsed, energy_j)
        return self.last_iteration


def wrap_schedule(schedule, hook: PerseusHook):
    """Announces every forward/backward of a torch.distributed.pipelining schedule to `hook`.

    Wraps the schedule's stage(s) `forward_one_chunk` and `backward_one_chunk`
    and its `step`. Needs torch >= 2.4 (where torch.distributed.pipelining exists).
    """
    try:
        import torch
        import torch.distributed.pipelining  # noqa: F401
    except ImportError as error:
        import torch
        raise InvalidInputError(
            "torch.distributed.pipelining is not in this PyTorch "
            f"({torch.__version__}); it needs torch >= 2.4. Announce computations with "
            "PerseusHook.on_instruction_begin/end in your executor instead") from error
    stages = getattr(schedule, "_stages", None) or [getattr(schedule, "_stage")]
    for stage in stages:
        forward, backward = stage.forward_one_chunk, stage.backward_one_chunk

        def forward_one_chunk(fwd_chunk_id, *args, _f=forward, **kwargs):
            hook.on_instruction_begin("forward", fwd_chunk_id)
            try:
                return _f(fwd_chunk_id, *args, **kwargs)
            finally:
                hook.on_instruction_end("forward", fwd_chunk_id)

        def backward_one_chunk(bwd_chunk_id, *args, _b=backward, **kwargs):
            hook.on_instruction_begin("backward", bwd_chunk_id)
            try:
                return _b(bwd_chunk_id, *args, **kwargs)
            finally:
                hook.on_instruction_end("backward", bwd_chunk_id)

        stage.forward_one_chunk = forward_one_chunk
        stage.backward_one_chunk = backward_one_chunk
    step = schedule.step

    def wrapped_step(*args, **kwargs):
        hook.on_step_begin()
        result = step(*args, **kwargs)
        hook.on_step_end()
        return result

    schedule.step = wrapped_step
    return schedule
