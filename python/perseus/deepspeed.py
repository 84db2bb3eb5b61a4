"""Perseus for DeepSpeed's pipeline engine (deepspeed.runtime.pipe, DeepSpeed 0.19).

Two things:

* `schedule_order(stages, microbatches)`: the computations every pipeline rank runs in one
  `train_batch`, read from DeepSpeed's own `TrainSchedule` (the schedule
  `PipelineEngine.train_batch` executes), as a `perseus.torch.ScheduleOrder`; its `.csv()`
  (also `schedule_csv(...)`) is torch's compute-only form (`<stage>F<mb>`, `<stage>B<mb>`, one
  row per rank) that `perseus plan --schedule-file` reads, and `.plan(mhz)` gives strict
  hooks their plans. It equals Perseus' built-in `1f1b` schedule.
* `instrument(engine, hook)`: makes a real `PipelineEngine` announce every ForwardPass and
  BackwardPass it executes to a `perseus.torch.PerseusHook` (kind, microbatch, stage), and
  each `train_batch` as one step:

      engine, _, _, _ = deepspeed.initialize(model=pipeline_module, ...)
      hook = perseus.torch.PerseusHook(client=client, set_frequency=controller.set,
                                       strict=False, rank=engine.global_rank)
      perseus.deepspeed.instrument(engine, hook)
      for _ in range(steps):
          engine.train_batch(data_iter)        # a planned clock per computation

Microbatch ids. DeepSpeed's compute instructions carry a *buffer id*, not a microbatch id:
`TrainSchedule` keeps max(2, min(S - s, M)) activation buffers on stage s and a microbatch m
uses buffer m % buffers (`PipeSchedule._buffer_idx`), so buffer ids repeat within a step.
The microbatch of an instruction is what the schedule computed it from: `TrainSchedule.steps()`
yields one list of instructions per step id (0 .. 2(M + S - 1) - 1), and for step id t,
`TrainSchedule._step_to_micro_batch(t)` gives (microbatch, is_forward); the step's ForwardPass
or BackwardPass is that microbatch's (DeepSpeed emits at most one compute instruction per step,
only for a valid microbatch 0 <= m < M). Both functions here derive microbatches exactly so
and check that the instruction's buffer id is `_buffer_idx(microbatch)`.

How the engine is instrumented (DeepSpeed 0.19.8, runtime/pipe/engine.py):
`PipelineEngine._exec_schedule` binds each instruction's handler from the class dict
`_INSTRUCTION_MAP` (`MethodType(self._INSTRUCTION_MAP[type(cmd)], self)`), so replacing
`engine._exec_forward_pass` on the instance would not be seen. `instrument` therefore gives the
engine its own copy of `_INSTRUCTION_MAP` with the ForwardPass/BackwardPass handlers wrapped,
wraps `engine._exec_schedule` to follow the step id of the schedule it runs, and wraps
`engine.train_batch` (on_step_begin before; on_step_end after, or on_step_abort when the batch
raised). `eval_batch` runs DeepSpeed's InferenceSchedule, which is not in the plan: its
forwards are not announced, and before it runs the hook's `on_unplanned_work()` (where the hook
has it) sets the highest clock.

DeepSpeed is imported only when these functions are called; `import perseus.deepspeed` works
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import InvalidInputError
from ._steps import abort_step

if TYPE_CHECKING:  # pragma: no cover
    from .torch import ScheduleOrder, Step

__all__ = ["Instrumentation", "instrument", "schedule_csv", "schedule_order"]


def _schedule_module() -> Any:
    try:
        from deepspeed.runtime.pipe import schedule
    except ImportError as error:
        raise InvalidInputError(
            "perseus.deepspeed needs DeepSpeed (pip install deepspeed; tested with 0.19.8): "
            f"{error}") from error
    return schedule


def _kind_of(cmd: Any) -> Optional[str]:
    """"forward" / "backward" for DeepSpeed's ForwardPass / BackwardPass, else None."""
    schedule = _schedule_module()
    if isinstance(cmd, schedule.ForwardPass):
        return "forward"
    if isinstance(cmd, schedule.BackwardPass):
        return "backward"
    return None


def _microbatch_of(sched: Any, step_id: int, kind: str, buffer_id: int) -> int:
    """The microbatch of the `kind` computation (on buffer `buffer_id`) that step `step_id` of
    TrainSchedule `sched` runs: `_step_to_micro_batch(step_id)`, checked against the buffer."""
    microbatch, is_forward = sched._step_to_micro_batch(step_id)
    where = f"DeepSpeed TrainSchedule stage {sched.stage_id}, step {step_id}"
    if is_forward != (kind == "forward") or not sched._valid_micro_batch(microbatch):
        raise InvalidInputError(
            f"{where} runs a {kind} pass, but _step_to_micro_batch({step_id}) is "
            f"({microbatch}, is_forward={is_forward})")
    if sched._buffer_idx(microbatch) != buffer_id:
        raise InvalidInputError(
            f"{where}: the {kind} pass uses buffer {buffer_id}, but microbatch {microbatch} "
            f"uses buffer {sched._buffer_idx(microbatch)}")
    return int(microbatch)


def schedule_order(stages: int, microbatches: int) -> "ScheduleOrder":
    """Every pipeline rank's computations in one `train_batch`, in execution order, from
    DeepSpeed's own `TrainSchedule(microbatches, stages, stage_id).steps()`.

    Rank s runs model stage s: `.ranks[s]` is its list of `perseus.torch.Step`
    (kind "forward" / "backward", stage, microbatch)."""
    from .torch import ScheduleOrder, Step

    if stages < 1 or microbatches < 1:
        raise InvalidInputError(
            f"stages ({stages}) and microbatches ({microbatches}) must be at least 1")
    schedule = _schedule_module()
    ranks: List[List[Step]] = []
    for stage in range(stages):
        sched = schedule.TrainSchedule(micro_batches=microbatches, stages=stages, stage_id=stage)
        row: List[Step] = []
        for step_id, cmds in enumerate(sched.steps()):
            for cmd in cmds:
                kind = _kind_of(cmd)
                if kind is not None:
                    row.append(Step(kind, stage,
                                    _microbatch_of(sched, step_id, kind, cmd.buffer_id)))
        ranks.append(row)
    return ScheduleOrder(ranks, stages, stages, microbatches, "DeepSpeed TrainSchedule")


def schedule_csv(stages: int, microbatches: int) -> str:
    """`schedule_order(...).csv()`: torch's compute-only schedule CSV (one row per rank, no
    header), what `perseus plan --schedule-file` reads and `perseus show-schedule --csv`
    writes."""
    return schedule_order(stages, microbatches).csv()


class _TrackedSchedule:
    """Iterates a PipeSchedule like `_exec_schedule` does, remembering the current step id."""

    def __init__(self, schedule: Any, on_step: Callable[[int], None]) -> None:
        self._schedule = schedule
        self._on_step = on_step

    def __iter__(self) -> Any:
        for step_id, cmds in enumerate(self._schedule):
            self._on_step(step_id)
            yield cmds

    def __getattr__(self, name: str) -> Any:  # num_pipe_buffers() and the rest
        return getattr(self._schedule, name)


class Instrumentation:
    """What `instrument` installed on an engine; `remove()` (or leaving a `with` block) takes
    it off again."""

    def __init__(self, engine: Any, hook: Any) -> None:
        schedule = _schedule_module()
        if getattr(engine, "_perseus_instrumentation", None) is not None:
            raise InvalidInputError("this DeepSpeed engine is already instrumented")
        for name in ("train_batch", "_exec_schedule", "_INSTRUCTION_MAP", "stage_id"):
            if not hasattr(engine, name):
                raise InvalidInputError(
                    f"{type(engine).__name__} has no {name}: instrument() needs a DeepSpeed "
                    "PipelineEngine (deepspeed.initialize with a PipelineModule)")
        self.engine = engine
        self.hook = hook
        self._schedule = schedule
        self._in_train = False
        self._sched: Any = None   # the TrainSchedule train_batch is running
        self._step_id = -1
        self._saved: Dict[str, Any] = {name: engine.__dict__[name]
                                       for name in ("train_batch", "eval_batch",
                                                    "_exec_schedule", "_INSTRUCTION_MAP")
                                       if name in engine.__dict__}
        self._install()
        engine._perseus_instrumentation = self

    # -- installing ---------------------------------------------------------------------------

    def _install(self) -> None:
        engine, schedule = self.engine, self._schedule
        train_batch = engine.train_batch
        eval_batch = getattr(engine, "eval_batch", None)
        exec_schedule = engine._exec_schedule
        instruction_map = dict(engine._INSTRUCTION_MAP)
        forward_pass = instruction_map[schedule.ForwardPass]
        backward_pass = instruction_map[schedule.BackwardPass]

        def wrapped_train_batch(*args: Any, **kwargs: Any) -> Any:
            self.hook.on_step_begin()
            self._in_train = True
            try:
                result = train_batch(*args, **kwargs)
            except BaseException:
                self._in_train, self._sched = False, None
                abort_step(self.hook)
                raise
            self._in_train, self._sched = False, None
            self.hook.on_step_end()
            return result

        def wrapped_eval_batch(*args: Any, **kwargs: Any) -> Any:
            unplanned = getattr(self.hook, "on_unplanned_work", None)
            if unplanned is not None and not self._in_train:
                unplanned()
            assert eval_batch is not None
            return eval_batch(*args, **kwargs)

        def wrapped_exec_schedule(pipe_schedule: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._in_train or self._sched is not None:
                return exec_schedule(pipe_schedule, *args, **kwargs)
            if not isinstance(pipe_schedule, schedule.TrainSchedule):
                raise InvalidInputError(
                    f"perseus.deepspeed knows the microbatches of DeepSpeed's TrainSchedule, "
                    f"not of {type(pipe_schedule).__name__} (train_batch of "
                    f"{type(engine).__name__})")
            self._sched = pipe_schedule

            def on_step(step_id: int) -> None:
                self._step_id = step_id

            return exec_schedule(_TrackedSchedule(pipe_schedule, on_step), *args, **kwargs)

        def announced(kind: str, handler: Callable[..., Any]) -> Callable[..., Any]:
            def run(engine_self: Any, buffer_id: int, **kwargs: Any) -> Any:
                sched = self._sched
                if sched is None:  # eval_batch's InferenceSchedule, or outside train_batch
                    return handler(engine_self, buffer_id, **kwargs)
                microbatch = _microbatch_of(sched, self._step_id, kind, buffer_id)
                stage = int(engine_self.stage_id)
                self.hook.on_instruction_begin(kind, microbatch, stage=stage)
                try:
                    return handler(engine_self, buffer_id, **kwargs)
                finally:
                    self.hook.on_instruction_end(kind, microbatch, stage=stage)

            run.__name__ = getattr(handler, "__name__", kind)
            run.__wrapped__ = handler  # type: ignore[attr-defined]
            return run

        instruction_map[schedule.ForwardPass] = announced("forward", forward_pass)
        instruction_map[schedule.BackwardPass] = announced("backward", backward_pass)
        engine._INSTRUCTION_MAP = instruction_map  # the instance's copy shadows the class's
        engine._exec_schedule = wrapped_exec_schedule
        engine.train_batch = wrapped_train_batch
        if eval_batch is not None:
            engine.eval_batch = wrapped_eval_batch

    def remove(self) -> None:
        """Restores the engine's own methods and instruction map."""
        engine = self.engine
        for name in ("train_batch", "eval_batch", "_exec_schedule", "_INSTRUCTION_MAP"):
            if name in self._saved:
                setattr(engine, name, self._saved[name])
            elif name in engine.__dict__:
                del engine.__dict__[name]
        engine._perseus_instrumentation = None

    def __enter__(self) -> "Instrumentation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def instrument(engine: Any, hook: Any) -> Instrumentation:
    """Makes DeepSpeed `PipelineEngine` `engine` announce its computations to `hook`.

    Every `engine.train_batch()` is one step (`hook.on_step_begin()` / `on_step_end()`, or
    `on_step_abort()` when it raised); each ForwardPass and BackwardPass is announced with
    `hook.on_instruction_begin(kind, microbatch, stage=engine.stage_id)` and
    `on_instruction_end(...)` (kind "forward" or "backward"; microbatch as
    `TrainSchedule._step_to_micro_batch` computes it). The order is
    `schedule_order(...).ranks[engine.stage_id]`, so a plan for this rank in that order runs
    strictly. Returns an
    `Instrumentation`; `remove()` undoes it, and it is a context manager."""
    return Instrumentation(engine, hook)
