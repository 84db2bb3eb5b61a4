"""Perseus for Megatron-Core's pipeline schedules (megatron.core.pipeline_parallel.schedules,
Megatron-Core 0.16).

Two things:

* `schedule_order(pipeline_parallel_size, microbatches, virtual_pipeline_size=None)`: every
  pipeline rank's computations in one `forward_backward_func` call, as a
  `perseus.torch.ScheduleOrder` (`.csv()`, also `schedule_csv(...)`; `.plan(mhz)`), computed
  with Megatron-Core's own helpers: `get_pp_rank_microbatches` (warm-up count),
  `get_schedule_table` (virtual microbatch -> (microbatch, model chunk)) and
  `convert_schedule_table_to_order` (megatron.core.transformer.cuda_graphs; the order the
  schedule loop runs, which Megatron itself uses to capture CUDA graphs in execution order).
  Model chunk c on pipeline rank r is model stage c * P + r, as in Perseus' `interleaved-1f1b`.
  The CSV is torch's compute-only form (`<stage>F<mb>`, `<stage>B<mb>`, one row per rank) that
  `perseus plan --schedule-file` reads.
* `instrument(hook)`: patches `schedules.forward_step` and `schedules.backward_step` (module
  globals that `forward_backward_no_pipelining`, `forward_backward_pipelining_without_interleaving`
  and `forward_backward_pipelining_with_interleaving` call by name) and those three functions
  (`get_forward_backward_func` returns them by name, so it returns the wrapped ones), so every
  forward and backward is announced to a `perseus.torch.PerseusHook` with its model stage and
  microbatch, and every forward_backward call is one step:

      with perseus.megatron.instrument(hook):
          pretrain(...)                # or your loop calling get_forward_backward_func()(...)

How stage and microbatch are known. forward_step gets `current_microbatch` (the microbatch
index, in all three schedules) and, interleaved, `vp_stage` (the model chunk). backward_step
gets neither: it gets the output tensor(s) that forward_step returned for that microbatch
(the schedules keep them in per-chunk FIFO lists and pop them for the backward), so the
instrumentation remembers each forward's output object and looks the backward's up by
identity. Only the pipeline rank and size come from outside: the `p2p_communicator` or
`pg_collection` argument when given, else megatron.core.parallel_state.

Calls with `forward_only=True` (evaluation) are not planned: nothing is announced and the
hook's `on_unplanned_work()` (where it has it) sets the highest clock. Megatron's combined
1F1B path (`config.overlap_moe_expert_parallel_comm`, which runs its own merged
forward-backward step) is not announced; instrument warns when it meets it.

Megatron-Core is imported only when these functions are called; `import perseus.megatron`
works without it.
"""

from __future__ import annotations

import inspect
import warnings
from contextlib import contextmanager
from types import SimpleNamespace
from typing import (TYPE_CHECKING, Any, Callable, ContextManager, Dict, Iterator, List,
                    Optional, Tuple)

from . import InvalidInputError
from ._steps import abort_step

if TYPE_CHECKING:  # pragma: no cover
    from .torch import ScheduleOrder, Step

__all__ = ["Instrumentation", "instrument", "schedule_csv", "schedule_order"]
_FORWARD_BACKWARD = ("forward_backward_no_pipelining",
                     "forward_backward_pipelining_without_interleaving",
                     "forward_backward_pipelining_with_interleaving")


def _schedules() -> Any:
    try:
        from megatron.core.pipeline_parallel import schedules
    except ImportError as error:
        raise InvalidInputError(
            "perseus.megatron needs Megatron-Core (pip install megatron-core; tested with "
            f"0.16.1): {error}") from error
    return schedules


def _check_shape(pipeline_parallel_size: int, microbatches: int,
                 virtual_pipeline_size: Optional[int], group: int) -> None:
    """The checks Megatron's schedules make before they run (same conditions)."""
    if pipeline_parallel_size < 1 or microbatches < 1:
        raise InvalidInputError(
            f"pipeline_parallel_size ({pipeline_parallel_size}) and microbatches "
            f"({microbatches}) must be at least 1")
    if virtual_pipeline_size is None:
        return
    if virtual_pipeline_size < 1:
        raise InvalidInputError(f"virtual_pipeline_size ({virtual_pipeline_size}) must be >= 1")
    if pipeline_parallel_size == 1:
        raise InvalidInputError(
            "virtual pipeline parallelism needs pipeline_parallel_size > 1 (with 1, Megatron "
            "runs forward_backward_no_pipelining, which takes one model chunk)")
    if group > microbatches or group < pipeline_parallel_size:
        raise InvalidInputError(
            f"microbatch_group_size ({group}) must be in [pipeline_parallel_size="
            f"{pipeline_parallel_size}, microbatches={microbatches}] (Megatron's "
            "forward_backward_pipelining_with_interleaving)")
    final = microbatches % group
    if 0 < final < pipeline_parallel_size:
        raise InvalidInputError(
            f"microbatches ({microbatches}) mod microbatch_group_size ({group}) is {final}: it "
            f"must be 0 or at least pipeline_parallel_size ({pipeline_parallel_size}) "
            "(Megatron's forward_backward_pipelining_with_interleaving)")


def schedule_order(pipeline_parallel_size: int, microbatches: int,
                   virtual_pipeline_size: Optional[int] = None, *,
                   microbatch_group_size: Optional[int] = None) -> "ScheduleOrder":
    """Every pipeline rank's computations in one training forward_backward_func call, in
    execution order, from Megatron-Core's schedule helpers.

    `virtual_pipeline_size` None: forward_backward_pipelining_without_interleaving (or
    forward_backward_no_pipelining for one rank); otherwise the interleaved schedule with that
    many model chunks per rank, `microbatch_group_size` being
    `config.microbatch_group_size_per_vp_stage` (Megatron's default: the pipeline size).
    `.ranks[r]` is rank r's list of `perseus.torch.Step` (kind "forward" / "backward", model
    stage, microbatch); chunk c of rank r is model stage c * pipeline_parallel_size + r."""
    from .torch import ScheduleOrder, Step

    schedules = _schedules()
    from megatron.core.transformer.cuda_graphs import convert_schedule_table_to_order

    P, V = pipeline_parallel_size, virtual_pipeline_size
    group = microbatch_group_size if microbatch_group_size is not None else P
    _check_shape(P, microbatches, V, group)
    chunks = V if V is not None else 1
    table = schedules.get_schedule_table(microbatches, chunks, group)
    ranks: List[List[Step]] = []
    for rank in range(P):
        # get_pp_rank_microbatches reads the pipeline size and rank and the virtual size from a
        # P2PCommunicator: these three attributes are all it reads.
        sizes = SimpleNamespace(
            pp_group=SimpleNamespace(size=lambda: P, rank=lambda rank=rank: rank),
            virtual_pipeline_model_parallel_size=V)
        _, _, warmup, _ = schedules.get_pp_rank_microbatches(
            microbatches, chunks, group, forward_only=False, p2p_communicator=sizes)
        order = convert_schedule_table_to_order(warmup, chunks, table)
        row: List[Step] = []
        forwards = backwards = 0
        for entry in order:
            if entry > 0:  # forward of chunk entry - 1: virtual microbatch `forwards`
                microbatch, chunk = table[forwards]
                if entry - 1 != chunk:
                    raise InvalidInputError(
                        f"Megatron's order and schedule table disagree at rank {rank}, forward "
                        f"{forwards}: chunk {entry - 1} against {chunk}")
                forwards += 1
                row.append(Step("forward", chunk * P + rank, int(microbatch)))
            else:  # backward of chunk -entry - 1 (= chunks - 1 - the table's chunk)
                microbatch, chunk = table[backwards]
                backwards += 1
                row.append(Step("backward", (-entry - 1) * P + rank, int(microbatch)))
        ranks.append(row)
    name = ("Megatron-Core forward_backward_pipelining_with_interleaving" if V is not None
            else "Megatron-Core forward_backward_pipelining_without_interleaving" if P > 1
            else "Megatron-Core forward_backward_no_pipelining")
    return ScheduleOrder(ranks, P, P * chunks, microbatches, name)


def schedule_csv(pipeline_parallel_size: int, microbatches: int,
                 virtual_pipeline_size: Optional[int] = None, *,
                 microbatch_group_size: Optional[int] = None) -> str:
    """`schedule_order(...).csv()`: torch's compute-only schedule CSV (one row per rank, no
    header), what `perseus plan --schedule-file` reads and `perseus show-schedule --csv`
    writes."""
    return schedule_order(pipeline_parallel_size, microbatches, virtual_pipeline_size,
                          microbatch_group_size=microbatch_group_size).csv()


class _Step:
    """One forward_backward call being announced."""

    def __init__(self, pipeline_size: int, pipeline_rank: int) -> None:
        self.pipeline_size = pipeline_size
        self.pipeline_rank = pipeline_rank
        self.forwards: Dict[int, int] = {}  # per chunk, when current_microbatch is not passed
        # id(forward output) -> (output, stage, microbatch), oldest first; the output is kept
        # so that its id cannot be reused before its backward ran.
        self.pending: Dict[int, Tuple[Any, int, int]] = {}


_ACTIVE: List["Instrumentation"] = []


class Instrumentation:
    """The patches `instrument` made; `remove()` (or leaving a `with` block) undoes them."""

    def __init__(self, hook: Any, *, pipeline_rank: Optional[int] = None,
                 pipeline_size: Optional[int] = None) -> None:
        schedules = _schedules()
        if _ACTIVE:
            raise InvalidInputError("Megatron's schedules are already instrumented")
        if (pipeline_rank is None) != (pipeline_size is None):
            raise InvalidInputError("give both pipeline_rank and pipeline_size, or neither")
        self.hook = hook
        self._schedules = schedules
        self._rank_override = (None if pipeline_rank is None
                               else (int(pipeline_size), int(pipeline_rank)))  # type: ignore[arg-type]
        self._step: Optional[_Step] = None
        self._warned_combined = False
        self._saved: Dict[str, Callable[..., Any]] = {}
        self._install()
        _ACTIVE.append(self)

    # -- where the rank comes from ------------------------------------------------------------

    def _pipeline(self, name: str, kwargs: Dict[str, Any]) -> Tuple[int, int]:
        if name == "forward_backward_no_pipelining":
            return 1, 0
        if self._rank_override is not None:
            return self._rank_override
        for group in (getattr(kwargs.get("p2p_communicator"), "pp_group", None),
                      getattr(kwargs.get("pg_collection"), "pp", None)):
            if group is not None:
                return int(group.size()), int(group.rank())
        from megatron.core import parallel_state
        return (int(parallel_state.get_pipeline_model_parallel_world_size()),
                int(parallel_state.get_pipeline_model_parallel_rank()))

    # -- the patches --------------------------------------------------------------------------

    def _install(self) -> None:
        schedules = self._schedules
        forward_step = schedules.forward_step
        backward_step = schedules.backward_step
        forward_sig = inspect.signature(forward_step)
        backward_sig = inspect.signature(backward_step)
        hook = self.hook

        def announced_forward_step(*args: Any, **kwargs: Any) -> Any:
            step = self._step
            if step is None:
                return forward_step(*args, **kwargs)
            arguments = forward_sig.bind(*args, **kwargs).arguments
            chunk = arguments.get("vp_stage")
            if chunk is None:
                chunk = getattr(arguments.get("model"), "vp_stage", None)
            chunk = int(chunk) if chunk is not None else 0
            microbatch = arguments.get("current_microbatch")
            if microbatch is None:  # older Megatron: forwards of a chunk go in microbatch order
                microbatch = step.forwards.get(chunk, 0)
            step.forwards[chunk] = int(microbatch) + 1
            microbatch = int(microbatch)
            stage = chunk * step.pipeline_size + step.pipeline_rank
            hook.on_instruction_begin("forward", microbatch, stage=stage)
            try:
                result = forward_step(*args, **kwargs)
            finally:
                hook.on_instruction_end("forward", microbatch, stage=stage)
            output = result[0] if isinstance(result, tuple) else result
            step.pending[id(output)] = (output, stage, microbatch)
            return result

        def announced_backward_step(*args: Any, **kwargs: Any) -> Any:
            step = self._step
            if step is None:
                return backward_step(*args, **kwargs)
            output = backward_sig.bind(*args, **kwargs).arguments.get("output_tensor")
            entry = step.pending.pop(id(output), None)
            if entry is None and step.pending:
                # Not an output forward_step returned: take the oldest forward (what the
                # non-interleaved schedules back-propagate next); a wrong guess is the hook's
                # plan mismatch to report.
                entry = step.pending.pop(next(iter(step.pending)))
            if entry is None:
                raise InvalidInputError(
                    "Megatron ran backward_step with no forward_step output outstanding")
            _, stage, microbatch = entry
            hook.on_instruction_begin("backward", microbatch, stage=stage)
            try:
                return backward_step(*args, **kwargs)
            finally:
                hook.on_instruction_end("backward", microbatch, stage=stage)

        def stepped(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
            def forward_backward(*args: Any, **kwargs: Any) -> Any:
                if self._step is not None:  # called from inside a step: not a new one
                    return function(*args, **kwargs)
                if kwargs.get("forward_only", False):
                    unplanned = getattr(hook, "on_unplanned_work", None)
                    if unplanned is not None:
                        unplanned()
                    return function(*args, **kwargs)
                self._warn_if_combined(kwargs)
                with self._stepping(*self._pipeline(name, kwargs)):
                    return function(*args, **kwargs)

            forward_backward.__name__ = name
            forward_backward.__doc__ = function.__doc__
            forward_backward.__wrapped__ = function  # type: ignore[attr-defined]
            return forward_backward

        self._saved = {"forward_step": forward_step, "backward_step": backward_step}
        schedules.forward_step = announced_forward_step
        schedules.backward_step = announced_backward_step
        for name in _FORWARD_BACKWARD:
            function = getattr(schedules, name)
            self._saved[name] = function
            setattr(schedules, name, stepped(name, function))

    @contextmanager
    def _stepping(self, pipeline_size: int, pipeline_rank: int) -> Iterator[None]:
        if self._step is not None:
            raise InvalidInputError("a step is already running")
        self.hook.on_step_begin()
        self._step = _Step(pipeline_size, pipeline_rank)
        try:
            yield
        except BaseException:
            self._step = None
            abort_step(self.hook)
            raise
        self._step = None
        self.hook.on_step_end()

    def step(self, pipeline_size: Optional[int] = None,
             pipeline_rank: Optional[int] = None) -> ContextManager[None]:
        """One step for a loop of your own that calls `schedules.forward_step` and
        `schedules.backward_step` (a fork's schedule, say): the calls inside the block are
        announced as the forward_backward functions' are. The pipeline size and rank default
        to instrument()'s, else parallel_state."""
        if (pipeline_size is None) != (pipeline_rank is None):
            raise InvalidInputError("give both pipeline_size and pipeline_rank, or neither")
        if pipeline_size is None:
            pipeline_size, pipeline_rank = self._pipeline("", {})
        return self._stepping(int(pipeline_size), int(pipeline_rank))  # type: ignore[arg-type]

    def _warn_if_combined(self, kwargs: Dict[str, Any]) -> None:
        model = kwargs.get("model")
        if isinstance(model, list):
            model = model[0] if model else None
        config = None
        if model is not None:
            from megatron.core.utils import get_model_config
            try:
                config = get_model_config(model)
            except Exception:  # noqa: BLE001 (only for the warning)
                config = None
        if getattr(config, "overlap_moe_expert_parallel_comm", False) and not self._warned_combined:
            self._warned_combined = True
            warnings.warn("perseus.megatron: overlap_moe_expert_parallel_comm runs Megatron's "
                          "combined 1F1B step, whose computations are not announced",
                          stacklevel=3)

    def remove(self) -> None:
        """Puts Megatron's own functions back."""
        for name, function in self._saved.items():
            setattr(self._schedules, name, function)
        self._saved = {}
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def __enter__(self) -> "Instrumentation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def instrument(hook: Any, *, pipeline_rank: Optional[int] = None,
               pipeline_size: Optional[int] = None) -> Instrumentation:
    """Makes Megatron-Core's pipeline schedules announce their computations to `hook`.

    Every training call of forward_backward_no_pipelining /
    forward_backward_pipelining_without_interleaving /
    forward_backward_pipelining_with_interleaving (what `get_forward_backward_func()` returns)
    is one step: `hook.on_step_begin()`, then for every forward_step and backward_step
    `hook.on_instruction_begin(kind, microbatch, stage=...)` / `on_instruction_end(...)`
    (kind "forward" or "backward"; stage = model chunk * pipeline size + pipeline rank), then
    `hook.on_step_end()` (or `on_step_abort()` when the schedule raised). The order is
    `schedule_order(...).ranks[pipeline rank]`. The pipeline rank and size come from the call's
    p2p_communicator / pg_collection, else parallel_state, unless given here.

    Patches module globals of megatron.core.pipeline_parallel.schedules, so it affects the
    whole process; a forward_backward_func obtained before instrument() is not wrapped.
    Returns an `Instrumentation`: `remove()` undoes it, and it is a context manager."""
    return Instrumentation(hook, pipeline_rank=pipeline_rank, pipeline_size=pipeline_size)
