"""Perseus for PyTorch pipeline engines.

A `PerseusHook` sits in a training loop's pipeline executor. Before each
computation (a forward, backward, input or weight backward, or an overlapped
forward+backward pair) it sets the GPU's planned SM clock for it; at each
step's end it reports the iteration's time and energy to `perseus serve`.

torch.distributed.pipelining (torch 2.13). `schedule_from_torch` reads a
schedule object's per-rank order of computations without running it; its CSV
is what the planner reads. `wrap_schedule` makes the schedule announce every
computation it runs to the hook:

    order = perseus.torch.schedule_from_torch(schedule)       # every rank's order
    with open("schedule.csv", "w") as f:
        f.write(order.csv())                                  # perseus plan --schedule-file
    hook = perseus.torch.PerseusHook(client=client, set_frequency=controller.set,
                                     device=gpu, strict=False, rank=rank)
    perseus.torch.wrap_schedule(schedule, hook)
    for batch, target in data:
        schedule.step(batch, target=target, losses=losses)    # a clock per computation
        print(hook.last_report)

Manual executors (Megatron-Core, DeepSpeed and torchtitan have their own
modules, perseus.megatron, perseus.deepspeed and perseus.torchtitan, built on
this API):

    hook.on_step_begin()
    for kind, microbatch, stage in my_schedule:   # "forward", "backward", ...
        hook.on_instruction_begin(kind, microbatch, stage)
        run(kind, microbatch, stage)
        hook.on_instruction_end(kind, microbatch, stage)
    hook.on_step_end()

`stage` is the model stage (chunk) index, as in torch's schedules and the
planner's plans; with `stage=None` the hook matches (kind, microbatch) only,
which is enough for one stage per rank.

Failure policy. With `strict=True` (tests) a computation the plan does not
expect next raises PlanMismatchError. With `strict=False` (training) the hook
never raises: on the first mismatch it warns once (PlanMismatchWarning), runs
at the highest clock until the next step begins, and counts the event in
`hook.metrics`; `hook.last_report` says how many mismatches an iteration had.

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
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, NamedTuple, Optional,
                    Sequence, Set, Tuple, Union)

from . import InvalidInputError
from ._profiling import InJobProfile, InJobProfiler

if TYPE_CHECKING:  # pragma: no cover
    from ._perseus import Client, Device

__all__ = ["HookMetrics", "InJobProfile", "IterationReport", "KINDS", "PHASES", "PerseusHook",
           "PlanMismatchError", "PlanMismatchWarning", "ScheduleOrder", "ScheduleWrapper",
           "Step", "schedule_from_torch", "wrap_schedule"]

logger = logging.getLogger("perseus.torch")

#: The computation kinds of the planner's plans (a plan step's "kind").
KINDS = ("forward", "backward", "backward_input", "backward_weight", "overlap_f_b")

# torch's _ComputationType value <-> plan kind, for the compute actions.
_TORCH_KIND = {"F": "forward", "B": "backward", "I": "backward_input", "W": "backward_weight"}
_CELL_OF_KIND = {kind: letter for letter, kind in _TORCH_KIND.items()}
_NON_COMPUTE = ("UNSHARD", "RESHARD", "REDUCE_GRAD", "SEND_F", "RECV_F", "SEND_B", "RECV_B")


class PlanMismatchError(InvalidInputError):
    """The executor announced a computation the plan did not expect next."""


class PlanMismatchWarning(UserWarning):
    """A non-strict PerseusHook met a mismatch and runs at the highest clock until the next step."""


# ---------------------------------------------------------------------------------------------
# Schedules


class Step(NamedTuple):
    """One computation of a rank: kind (one of KINDS), model stage index, microbatch.

    For "overlap_f_b", stage and microbatch are the forward half's and `backward` is the
    backward half (kind "backward" or "backward_input")."""

    kind: str
    stage: int
    microbatch: int
    backward: Optional["Step"] = None

    def cell(self) -> str:
        """The computation as a cell of torch's schedule CSV: `0F3`, `7I0`,
        `(0F7;7B3)OVERLAP_F_B`."""
        if self.kind == "overlap_f_b":
            if self.backward is None:
                raise InvalidInputError(f"overlap_f_b {self.microbatch} has no backward half")
            forward = Step("forward", self.stage, self.microbatch)
            return f"({forward.cell()};{self.backward.cell()})OVERLAP_F_B"
        return f"{self.stage}{_CELL_OF_KIND[self.kind]}{self.microbatch}"

    def as_plan_step(self, frequency_mhz: int) -> Dict[str, Any]:
        """The step in the planner's plan vocabulary, at `frequency_mhz`."""
        out: Dict[str, Any] = {"kind": self.kind, "stage": self.stage,
                               "microbatch": self.microbatch, "frequency_mhz": frequency_mhz}
        if self.backward is not None:
            out["backward"] = {"kind": self.backward.kind, "stage": self.backward.stage,
                               "microbatch": self.backward.microbatch}
        return out

    @staticmethod
    def from_plan_step(step: Mapping[str, Any]) -> "Step":
        """The computation of a plan step ({kind, stage, microbatch[, backward]})."""
        backward = step.get("backward")
        return Step(str(step["kind"]), int(step.get("stage", -1)), int(step["microbatch"]),
                    Step.from_plan_step(backward) if backward is not None else None)

    def __str__(self) -> str:
        try:
            return self.cell()
        except (InvalidInputError, KeyError):
            return repr(self)


@dataclass
class ScheduleOrder:
    """Every rank's computations in the order a schedule runs them."""

    ranks: List[List[Step]]
    num_ranks: int
    num_stages: int
    microbatches: int
    name: str

    def csv(self) -> str:
        """torch's compute-only schedule CSV (`_dump_csv`): one row per rank, no header.

        The planner reads it (`perseus plan --schedule-file`, `perseus.plan(schedule_file=)`)
        and so does torch (`_load_csv(path, format="compute_only")`)."""
        return "".join(",".join(step.cell() for step in rank) + "\n" for rank in self.ranks)

    def plan(self, frequency_mhz: Union[int, Callable[[int, Step], int]]
             ) -> List[List[Dict[str, Any]]]:
        """Per rank, the computations as plan steps, at one clock or at
        `frequency_mhz(rank, step)` (e.g. a strict hook's plan for checking an executor)."""
        def mhz(rank: int, step: Step) -> int:
            return frequency_mhz(rank, step) if callable(frequency_mhz) else int(frequency_mhz)
        return [[step.as_plan_step(mhz(r, step)) for step in steps]
                for r, steps in enumerate(self.ranks)]

    def stage_to_rank(self) -> Dict[int, int]:
        """The rank that runs each model stage."""
        out: Dict[int, int] = {}
        for rank, steps in enumerate(self.ranks):
            for step in steps:
                out.setdefault(step.stage, rank)
                if step.backward is not None:
                    out.setdefault(step.backward.stage, rank)
        return out


def _step_of_action(action: Any, where: str) -> Optional[Step]:
    """A torch _Action as a Step; None for non-compute actions (comms, FSDP, grad reduction)."""
    if action is None:
        return None
    ctype = getattr(action.computation_type, "value", action.computation_type)
    if ctype in _NON_COMPUTE:
        return None
    if ctype == "OVERLAP_F_B":
        subs = action.sub_actions or ()
        halves = [_step_of_action(sub, where) for sub in subs]
        forward = halves[0] if len(halves) == 2 else None
        backward = halves[1] if len(halves) == 2 else None
        if (forward is None or backward is None or forward.kind != "forward"
                or backward.kind not in ("backward", "backward_input")):
            raise InvalidInputError(
                f"{where}: {action} is not an overlap of one forward and one backward "
                "(or backward_input), in that order")
        return Step("overlap_f_b", forward.stage, forward.microbatch, backward)
    kind = _TORCH_KIND.get(ctype)
    if kind is None:
        raise InvalidInputError(f"{where}: unknown torch action {action}")
    if action.microbatch_index is None:
        raise InvalidInputError(f"{where}: {action} has no microbatch")
    return Step(kind, int(action.stage_index), int(action.microbatch_index))


def _steps_of_actions(actions: Sequence[Any], where: str) -> List[Step]:
    out = []
    for i, action in enumerate(actions):
        step = _step_of_action(action, f"{where}, action {i}")
        if step is not None:
            out.append(step)
    return out


def _one_f_one_b(num_stages: int, microbatches: int, stage: int) -> List[Step]:
    """What torch 2.13's Schedule1F1B._step_microbatches runs on `stage`: min(M, S - s) forwards,
    then one backward and one forward in turn, then the remaining backwards."""
    warmup = min(microbatches, num_stages - stage)
    steps = [Step("forward", stage, mb) for mb in range(warmup)]
    forward = warmup
    for backward in range(microbatches):
        steps.append(Step("backward", stage, backward))
        if forward < microbatches:
            steps.append(Step("forward", stage, forward))
            forward += 1
    return steps


def _executed_rank_steps(schedule: Any, rank: int) -> List[Step]:
    """The computations `schedule` runs on pipeline rank `rank`, in order."""
    kind, source = _order_source(schedule)
    name = type(schedule).__name__
    if kind == "1f1b":
        return _one_f_one_b(schedule._num_stages, schedule._n_microbatches, rank)
    if rank not in source:
        raise InvalidInputError(f"{name} has no order for rank {rank}")
    return _steps_of_actions(source[rank], f"{name} rank {rank}")


def _order_source(schedule: Any) -> Tuple[str, Any]:
    """Where `schedule`'s executed order lives: ("1f1b", None) or ("actions", {rank: [_Action]}).

    Decided by the _step_microbatches implementation the schedule runs, which is what fixes
    the order (a subclass with its own _step_microbatches is unknown)."""
    from torch.distributed.pipelining import schedules as ts

    name = type(schedule).__name__
    runner = getattr(type(schedule), "_step_microbatches", None)
    if runner is ts.Schedule1F1B._step_microbatches:
        # Not pipeline_order: in torch 2.13 Schedule1F1B._get_pipeline_order labels the last
        # rank's forwards F1..FM (it numbers forwards from 1 when there is no warm-up), while
        # _step_microbatches runs F0 B0 F1 B1 ... there. The other ranks' labels are right.
        return "1f1b", None
    if runner is ts.ScheduleGPipe._step_microbatches:
        # GPipe runs all forwards then all backwards, which is what its pipeline_order says.
        order = getattr(schedule, "pipeline_order", None)
        if order is None:
            raise InvalidInputError(f"{name} has no pipeline_order")
        return "actions", order
    if runner is ts._PipelineScheduleRuntime._step_microbatches:
        # The runtime executes pipeline_order_with_comms[rank] (also what _load_csv with
        # format="compute_comms" sets); pipeline_order only before lowering.
        order = getattr(schedule, "pipeline_order_with_comms", None)
        if not order:
            order = getattr(schedule, "pipeline_order", None)
        if not order:
            raise InvalidInputError(f"{name} has no schedule yet (load one with _load_csv)")
        return "actions", order
    if runner is ts.PipelineScheduleMulti._step_microbatches:
        order = getattr(schedule, "pipeline_order", None)
        if not order:
            raise InvalidInputError(f"{name} has no pipeline_order (load one with _load_csv)")
        return "actions", order
    raise InvalidInputError(
        f"schedule_from_torch does not know the order {name} runs: supported are "
        "ScheduleGPipe, Schedule1F1B, PipelineScheduleMulti and _PipelineScheduleRuntime with "
        "their subclasses that keep torch's _step_microbatches (ScheduleInterleaved1F1B, "
        "ScheduleLoopedBFS, ScheduleInterleavedZeroBubble, ScheduleZBVZeroBubble, "
        "ScheduleDualPipeV); pass wrap_schedule an explicit ScheduleOrder for others")


def schedule_from_torch(schedule: Any) -> ScheduleOrder:
    """Every rank's computations of a torch.distributed.pipelining schedule, in the order they
    run, read from the schedule object without running it.

    Runtime schedules (Interleaved1F1B, LoopedBFS, InterleavedZeroBubble, ZBVZeroBubble,
    DualPipeV, and any loaded with _load_csv): `pipeline_order_with_comms`, what they execute;
    ScheduleGPipe: `pipeline_order`; Schedule1F1B: the order its _step_microbatches runs (its
    pipeline_order mislabels the last rank in torch 2.13). Communication, FSDP and gradient
    reduction actions and idle slots are left out. Raises InvalidInputError for other classes.
    """
    kind, source = _order_source(schedule)
    name = type(schedule).__name__
    num_stages = int(schedule._num_stages)
    microbatches = int(schedule._n_microbatches)
    if kind == "1f1b":
        ranks = [_one_f_one_b(num_stages, microbatches, s) for s in range(num_stages)]
        return ScheduleOrder(ranks, num_stages, num_stages, microbatches, name)
    num_ranks = int(getattr(schedule, "pp_group_size", num_stages))
    if sorted(source) != list(range(num_ranks)):
        raise InvalidInputError(
            f"{name}'s order has ranks {sorted(source)}, expected 0..{num_ranks - 1}")
    ranks = [_steps_of_actions(source[r], f"{name} rank {r}") for r in range(num_ranks)]
    return ScheduleOrder(ranks, num_ranks, num_stages, microbatches, name)


# ---------------------------------------------------------------------------------------------
# The hook


@dataclass
class IterationReport:
    """One iteration, as `PerseusHook.last_report`."""

    iteration: int
    time_s: float
    energy_j: float
    mismatches: int
    plan_version: int
    computations: int
    fallback: bool  # whether part of it ran at the highest clock after a mismatch
    phase: str = "planned"  # warmup | baseline | profiling | planned (PHASES)


@dataclass
class HookMetrics:
    """Cumulative counters of a PerseusHook (`hook.metrics`)."""

    iterations: int = 0         # steps ended (and reported)
    computations: int = 0       # computations announced
    mismatches: int = 0         # plan mismatches met (each raised when strict)
    fallback_steps: int = 0     # steps that ran partly at the highest clock after a mismatch
    clock_changes: int = 0      # set_frequency calls
    aborted_steps: int = 0      # steps ended by on_step_abort (an exception in the step)
    errors: int = 0             # exceptions of the plan source, clock setter or device, caught

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)


# What an iteration ran, as the hook reports it: `warmup` (the first iterations, at the
# highest clock, left out of every figure), `baseline` (at the highest clock: the measured
# savings' reference), `profiling` (in-job profiling), `planned` (the coordinator's or the
# given plan).
PHASES = ("warmup", "baseline", "profiling", "planned")


class _Planned(NamedTuple):
    kind: str
    stage: Optional[int]  # None: any stage
    microbatch: int
    frequency_mhz: int


def _normalize_plan(plan: Sequence[Mapping[str, Any]], source: str) -> List[_Planned]:
    out = []
    for i, step in enumerate(plan):
        try:
            kind = str(step["kind"])
            stage = step.get("stage")
            planned = _Planned(kind, None if stage is None or int(stage) < 0 else int(stage),
                               int(step["microbatch"]), int(step["frequency_mhz"]))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InvalidInputError(
                f"{source} step {i} ({step!r}) is not a {{kind, stage, microbatch, "
                f"frequency_mhz}} plan step: {error!r}") from error
        if kind not in KINDS:
            raise InvalidInputError(f"{source} step {i} has unknown kind {kind!r}: one of {KINDS}")
        out.append(planned)
    return out


def _describe(kind: str, microbatch: int, stage: Optional[int]) -> str:
    return f"{kind} {microbatch}" + ("" if stage is None else f" of stage {stage}")


class PerseusHook:
    """Sets planned clocks per computation and reports iterations.

    The plan comes from `client` (a perseus.Client: the coordinator's plan for this rank;
    a new plan version takes effect at the next step) or `plan` (plan steps
    {kind, stage, microbatch, frequency_mhz} in execution order, e.g. one rank of
    perseus.Frontier.plan(i)). Computations must be announced in the plan's order.

    `strict=True` raises PlanMismatchError on a mismatch; `strict=False` (for training) warns
    once, runs at the highest clock until the next step begins, counts it and never raises.
    The highest clock is `fallback_mhz`, else the client's highest clock, else the plan's.
    Until a client has a plan, computations run at the highest clock (not a mismatch).

    Measured savings. With a client, the first `warmup_iterations` (default 1) run at the
    highest clock and are reported as phase "warmup", the next `baseline_iterations` (default
    3) at the highest clock as "baseline" (also every later iteration without a plan), the
    others as "planned": the coordinator's report compares the measured baseline with the
    planned iterations. Without a client both default to 0.

    In-job profiling. With `profile` (an InJobProfile) and no plan from the coordinator yet,
    after the baseline the rank profiles itself: each iteration runs at one clock of the sweep
    and every computation is measured (see perseus._profiling); then its rows and measured
    blocking power go to the coordinator (`client.submit_measurements`), which plans once every
    stage has sent its own; the hook runs at the highest clock meanwhile and follows the plan
    from the first step after it arrives. `profile.max_iterations` is the cost announced up
    front (logged); `hook.profiler` shows progress. A plan that arrives while profiling ends
    profiling (another run profiled the job).
    """

    def __init__(self, *, client: Optional["Client"] = None,
                 plan: Optional[Sequence[Mapping[str, Any]]] = None,
                 set_frequency: Optional[Callable[[int], None]] = None,
                 device: Optional["Device"] = None,
                 synchronize: Optional[Callable[[], None]] = None,
                 strict: bool = True, rank: int = 0,
                 fallback_mhz: Optional[int] = None,
                 warmup_iterations: Optional[int] = None,
                 baseline_iterations: Optional[int] = None,
                 profile: Optional[InJobProfile] = None) -> None:
        if client is None and plan is None:
            raise InvalidInputError("PerseusHook needs a client or a plan")
        if profile is not None and client is None:
            raise InvalidInputError("in-job profiling (profile=...) needs a client")
        for name, value in (("warmup_iterations", warmup_iterations),
                            ("baseline_iterations", baseline_iterations)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")
        reporting = client is not None  # without a client nothing measures a baseline
        self._warmup_iterations = (warmup_iterations if warmup_iterations is not None
                                   else 1 if reporting else 0)
        self._baseline_iterations = (baseline_iterations if baseline_iterations is not None
                                     else 3 if reporting else 0)
        self.profiler: Optional[InJobProfiler] = None
        if profile is not None:
            self.profiler = InJobProfiler(profile)
            logger.info("perseus: rank %d: in-job profiling costs at most %d iterations (%d "
                        "clocks x (%d warm-up + %d measured)), after %d warm-up and %d baseline "
                        "iterations", rank, profile.max_iterations,
                        len(set(profile.frequencies_mhz)), profile.warmup_iterations,
                        profile.measure_iterations, self._warmup_iterations,
                        self._baseline_iterations)
        self._profiling_ended = profile is None
        self._phase = "planned"
        self._client = client
        self._static_plan = _normalize_plan(plan, "plan") if plan is not None else None
        self._set_frequency = set_frequency
        self._device = device
        self._synchronize = synchronize
        self._strict = strict
        self._rank = rank
        self._fallback_mhz = fallback_mhz
        self._position = 0
        self._current_mhz = 0
        self._in_step = False
        self._in_instruction: Optional[Tuple[str, int, Optional[int]]] = None
        self._fallback = False
        self._step_mismatches = 0
        self._warned: Set[str] = set()
        self._iteration = 0
        self._step_start = 0.0
        self._energy_start = 0
        self._client_plan: List[_Planned] = []
        self._client_version = -1
        self.metrics = HookMetrics()
        self.last_report: Optional[IterationReport] = None
        self.last_iteration: Optional[Tuple[float, float]] = None  # (time_s, energy_j)

    # -- plan ---------------------------------------------------------------------------------

    @property
    def strict(self) -> bool:
        return self._strict

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def plan_version(self) -> int:
        """The coordinator's plan version this iteration runs (0: none yet)."""
        return max(self._client_version, 0)

    @property
    def current_mhz(self) -> int:
        """The clock the hook last set (0: none yet)."""
        return self._current_mhz

    @property
    def phase(self) -> str:
        """What the current (or last) iteration runs: one of PHASES."""
        return self._phase

    def _plan(self) -> List[_Planned]:
        if self._phase != "planned":
            return []  # warm-up, baseline, profiling: the highest clock or the sweep's
        return self._static_plan if self._static_plan is not None else self._client_plan

    def _choose_phase(self) -> str:
        i = self._iteration
        if i < self._warmup_iterations:
            return "warmup"
        if i < self._warmup_iterations + self._baseline_iterations:
            return "baseline"
        has_plan = self._static_plan is not None or self._client_version > 0
        if not self._profiling_ended and self.profiler is not None:
            if has_plan:
                self._profiling_ended = True
                logger.info("perseus: rank %d: a plan arrived while profiling; profiling ends "
                            "after %d iterations", self._rank, self.profiler.iterations)
            else:
                return "profiling"
        return "planned" if has_plan else "baseline"

    def _end_profiling_step(self, now: float, energy_mj: int) -> None:
        profiler, client = self.profiler, self._client
        assert profiler is not None and client is not None
        if not profiler.end_step(now, energy_mj):
            return
        self._profiling_ended = True
        rows, blocking = profiler.rows(), profiler.blocking_power_w()
        client.submit_measurements(rows, -1.0 if blocking is None else blocking)
        logger.info("perseus: rank %d: profiled in %d iterations (%d rows%s; blocking power "
                    "%s); running at the highest clock until the plan arrives", self._rank,
                    profiler.iterations, len(rows),
                    (f", stopped early at {profiler.stopped_early_at} MHz"
                     if profiler.stopped_early_at else ""),
                    "unmeasured" if blocking is None else f"{blocking:.1f} W")

    def _measure(self) -> Tuple[float, int]:
        """(time, energy) now, after the GPU finished (profiling only)."""
        if self._synchronize is not None:
            self._synchronize()
        device = self._device
        return (self._now(), int(device.energy_mj()) if device is not None else 0)

    def _refresh(self) -> None:
        # A new plan version takes effect at an iteration boundary, never mid-iteration.
        if self._client is None:
            return
        try:
            version = self._client.plan_version
            if version != self._client_version:
                plan = _normalize_plan(self._client.instructions(), "the coordinator's plan")
                self._client_plan, self._client_version = plan, version
        except Exception as error:  # noqa: BLE001 (the policy: never raise in production)
            if self._strict:
                raise
            self.metrics.errors += 1
            self._mismatch(f"rank {self._rank}: the plan source failed ({error!r}); keeping "
                           f"plan version {self.plan_version}")

    def highest_mhz(self) -> Optional[int]:
        """The clock used after a mismatch and without a plan: `fallback_mhz`, else the
        client's highest clock, else the plan's highest (None if none is known)."""
        if self._fallback_mhz is not None:
            return int(self._fallback_mhz)
        if self._client is not None:
            try:  # microbatch -1 is in no plan: the client answers its highest clock
                return int(self._client.frequency_for("forward", -1))
            except Exception:  # noqa: BLE001
                self.metrics.errors += 1
        plan = self._plan()
        return max(step.frequency_mhz for step in plan) if plan else None

    # -- events -------------------------------------------------------------------------------

    def _warn(self, message: str, consequence: str, what: str) -> None:
        """Warns (PlanMismatchWarning) the first time only for each `what` (mismatches; errors
        of the clock setter, device or report); logs every event at debug level."""
        logger.debug("%s", message)
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(f"perseus: {message}; {consequence} (this and later events are "
                          "counted in hook.metrics and not warned again)",
                          PlanMismatchWarning, stacklevel=4)

    def _mismatch(self, message: str) -> None:
        """A plan mismatch: raise (strict), or warn once, count and fall back to the highest
        clock."""
        self.metrics.mismatches += 1
        self._step_mismatches += 1
        if self._strict:
            raise PlanMismatchError(message)
        self._warn(message, "running at the highest clock until the next step begins",
                   "mismatch")
        if not self._fallback:
            self._fallback = True
            if self._in_step:
                self.metrics.fallback_steps += 1
        mhz = self.highest_mhz()
        if mhz is not None:
            self._apply(mhz)

    def _guarded(self, what: str, call: Callable[[], Any], default: Any) -> Any:
        """Runs `call`; without strict, an exception is counted, warned once and `default` used."""
        if self._strict:
            return call()
        try:
            return call()
        except Exception as error:  # noqa: BLE001
            self.metrics.errors += 1
            self._warn(f"rank {self._rank}: {what} failed ({error!r})", "going on without it",
                       "error")
            return default

    def _apply(self, mhz: int) -> None:
        if mhz == self._current_mhz:
            return
        set_frequency = self._set_frequency
        if set_frequency is None:
            self._current_mhz = mhz  # nothing to set: the clock the plan asks for
            return

        def change() -> bool:
            if self._synchronize is not None:
                self._synchronize()  # only when the clock changes
            set_frequency(mhz)
            return True

        if self._guarded(f"setting {mhz} MHz", change, False):
            self._current_mhz = mhz
            self.metrics.clock_changes += 1

    def _now(self) -> float:
        return self._device.now() if self._device is not None else time.monotonic()

    def on_step_begin(self) -> None:
        """Begins an iteration: takes a new plan version if there is one, starts measuring."""
        if self._in_step:
            # Strict: raises, the step goes on. Otherwise the unfinished step is dropped.
            self._mismatch(f"rank {self._rank}: on_step_begin called twice without on_step_end")
            self.metrics.aborted_steps += 1
        self._in_step = True
        self._position = 0
        self._fallback = False
        self._step_mismatches = 0
        self._in_instruction = None
        try:
            self._refresh()
        except BaseException:
            self._in_step = False  # strict: the plan source failed; no step began
            raise
        self._phase = self._choose_phase()
        if self._synchronize is not None:
            self._guarded("synchronize", self._synchronize, None)
        self._step_start = self._guarded("reading the time", self._now, time.monotonic())
        self._energy_start = (self._guarded("reading the energy", self._device.energy_mj, 0)
                              if self._device is not None else 0)
        if self._phase == "profiling":
            profiler = self.profiler
            assert profiler is not None
            self._apply(profiler.frequency_mhz)
            profiler.begin_step(self._step_start, int(self._energy_start))

    def _expected_frequency(self, kind: str, microbatch: int,
                            stage: Optional[int]) -> Optional[int]:
        """The planned clock of the computation announced now (None: highest clock, no plan)."""
        plan = self._plan()
        if not plan:
            return self.highest_mhz()  # no plan yet (or an empty one)
        if self._position >= len(plan):
            self._mismatch(
                f"rank {self._rank} announced {_describe(kind, microbatch, stage)}, but its plan "
                f"has only {len(plan)} computations per iteration")
            return None
        step = plan[self._position]
        expected_stage = step.stage if stage is not None else None  # named when announced
        if (step.kind != kind or step.microbatch != microbatch
                or (stage is not None and step.stage is not None and step.stage != stage)):
            self._mismatch(
                f"rank {self._rank} announced {_describe(kind, microbatch, stage)} as "
                f"computation {self._position} of the iteration, but the plan expects "
                f"{_describe(step.kind, step.microbatch, expected_stage)} there")
            return None
        return step.frequency_mhz

    def on_instruction_begin(self, kind: str, microbatch: int, stage: Optional[int] = None) -> int:
        """Sets the clock planned for this computation; returns the clock now set (MHz).

        `kind` is one of KINDS; for "overlap_f_b" microbatch and stage are its forward half's.
        `stage` (the model stage index) is matched when given."""
        if kind not in KINDS:
            message = f"unknown computation kind {kind!r}: one of {KINDS}"
            if self._strict:
                self.metrics.mismatches += 1
                raise InvalidInputError(message)
            self._mismatch(f"rank {self._rank}: {message}")
        self.metrics.computations += 1
        if not self._in_step:
            self._mismatch(f"rank {self._rank}: {_describe(kind, microbatch, stage)} announced "
                           "outside a step (call on_step_begin)")
        elif self._in_instruction is not None:
            running = _describe(*self._in_instruction)
            self._mismatch(f"rank {self._rank}: {_describe(kind, microbatch, stage)} begins "
                           f"before {running} ended")
        mhz: Optional[int] = None
        profiling = self._phase == "profiling" and self._in_step and not self._fallback
        if profiling:
            assert self.profiler is not None
            mhz = self.profiler.frequency_mhz
        elif not self._fallback:
            mhz = self._expected_frequency(kind, microbatch, stage)
        if self._fallback:
            mhz = self.highest_mhz()
        if mhz is not None:
            self._apply(mhz)
        if profiling:
            assert self.profiler is not None
            profiler = self.profiler
            self._guarded("measuring", lambda: profiler.begin_instruction(*self._measure()), None)
        self._in_instruction = (kind, microbatch, stage)
        return mhz if mhz is not None else self._current_mhz

    def on_instruction_end(self, kind: str, microbatch: int, stage: Optional[int] = None) -> None:
        """Ends the computation `on_instruction_begin` announced."""
        running = self._in_instruction
        if (running is None or running[:2] != (kind, microbatch)
                or (stage is not None and running[2] is not None and running[2] != stage)):
            self._mismatch(
                f"rank {self._rank}: {_describe(kind, microbatch, stage)} ended, but "
                + (f"{_describe(*running)} was running" if running is not None
                   else "no computation was running"))
        elif self._phase == "profiling" and self._in_step and not self._fallback:
            profiler = self.profiler
            assert profiler is not None
            self._guarded("measuring",
                          lambda: profiler.end_instruction(kind, stage, *self._measure()), None)
        self._in_instruction = None
        self._position += 1

    def on_step_abort(self) -> None:
        """Ends a step that an exception interrupted: no checks, nothing reported; the next
        on_step_begin starts clean. A no-op outside a step."""
        if not self._in_step:
            return
        self._in_step = False
        self._in_instruction = None
        self.metrics.aborted_steps += 1

    def on_step_end(self, energy_j: Optional[float] = None) -> Tuple[float, float]:
        """Ends the iteration; reports its time, energy and mismatches; returns (time_s, energy_j).

        `energy_j` overrides the device's energy counter (e.g. to add idle energy a simulated
        GPU does not see). When strict and the step did not run its plan, the step is ended
        (not reported) and PlanMismatchError raised."""
        if not self._in_step:
            self._mismatch(f"rank {self._rank}: on_step_end without on_step_begin")
            return (0.0, 0.0)
        problem: Optional[str] = None
        if self._in_instruction is not None:
            problem = (f"rank {self._rank}: the step ended while "
                       f"{_describe(*self._in_instruction)} ran")
        else:
            plan = self._plan()
            if plan and not self._fallback and self._position != len(plan):
                problem = (f"rank {self._rank} ran {self._position} computations this "
                           f"iteration; its plan has {len(plan)}")
        if problem is not None:
            if self._strict:
                self.on_step_abort()
            self._mismatch(problem)  # raises when strict
            self._in_instruction = None
        if self._synchronize is not None:
            self._guarded("synchronize", self._synchronize, None)
        now = self._guarded("reading the time", self._now, self._step_start)
        elapsed = now - self._step_start
        if energy_j is None:
            device = self._device
            energy_j = ((self._guarded("reading the energy", device.energy_mj,
                                       self._energy_start) - self._energy_start) / 1000.0
                        if device is not None else 0.0)
        client = self._client
        phase = self._phase
        progress: Optional[float] = None
        if phase == "profiling" and self.profiler is not None:
            end_energy = self._energy_start + int(round(energy_j * 1000))

            def end_profiling() -> None:
                try:
                    self._end_profiling_step(now, end_energy)
                except Exception:
                    self._profiling_ended = True  # the sweep is unusable: stop profiling
                    raise

            self._guarded("in-job profiling", end_profiling, None)
            progress = self.profiler.progress
        version = self.plan_version if phase == "planned" else 0
        if client is not None:
            self._guarded("reporting the iteration",
                          lambda: client.end_iteration(self._iteration, elapsed, energy_j,
                                                       mismatches=self._step_mismatches,
                                                       phase=phase, plan_version=version,
                                                       profiling_progress=progress), None)
        self.last_report = IterationReport(self._iteration, elapsed, energy_j,
                                           self._step_mismatches, self.plan_version,
                                           self._position, self._fallback, phase)
        self._iteration += 1
        self._in_step = False
        self.metrics.iterations += 1
        self.last_iteration = (elapsed, energy_j)
        return self.last_iteration

    def on_unplanned_work(self) -> Optional[int]:
        """Sets the highest clock for work outside the plan (evaluation, checkpointing);
        returns it (None if no highest clock is known). The next planned computation sets
        its own clock again."""
        mhz = self.highest_mhz()
        if mhz is not None:
            self._apply(mhz)
        return mhz


# ---------------------------------------------------------------------------------------------
# torch.distributed.pipelining adapter


def _require_pipelining() -> None:
    try:
        import torch.distributed.pipelining  # noqa: F401
    except ImportError as error:
        import torch
        raise InvalidInputError(
            "torch.distributed.pipelining is not in this PyTorch "
            f"({torch.__version__}); perseus.torch supports torch 2.13. Announce computations "
            "with PerseusHook.on_instruction_begin/end in your executor instead") from error


_WRAP_ATTR = "_perseus_wrapper"


@dataclass
class ScheduleWrapper:
    """What `wrap_schedule` returns. `expected`: this rank's computations in the schedule's
    order for the last step(); with `check_order`, `executed`: the computations announced to
    the hook in the last step() (an overlap as one), and `calls`: the stage methods torch
    called (an overlap's halves apart); `mismatch()` compares executed with expected."""

    schedule: Any
    hook: PerseusHook
    rank: int
    check_order: bool = False
    order: Optional[ScheduleOrder] = None  # given to wrap_schedule; else read per step
    executed: List[Step] = field(default_factory=list)
    calls: List[Step] = field(default_factory=list)  # the stage method calls (check_order)
    expected: List[Step] = field(default_factory=list)  # this rank's order for the last step
    _stages: List[Any] = field(default_factory=list, repr=False)
    _saved: List[Tuple[Any, str, Any]] = field(default_factory=list, repr=False)
    _active: bool = field(default=False, repr=False)
    _eval_depth: int = field(default=0, repr=False)
    _overlaps: Dict[Tuple[int, int], Step] = field(default_factory=dict, repr=False)
    _pending: Optional[Step] = field(default=None, repr=False)

    def mismatch(self) -> Optional[str]:
        """The first difference between `executed` and `expected` (needs check_order), or None."""
        if not self.check_order:
            raise InvalidInputError("wrap_schedule(..., check_order=True) records the order")
        for i, (ran, want) in enumerate(zip(self.executed, self.expected)):
            if ran != want:
                return f"rank {self.rank} computation {i}: ran {ran}, the schedule says {want}"
        if len(self.executed) != len(self.expected):
            return (f"rank {self.rank} ran {len(self.executed)} computations, the schedule has "
                    f"{len(self.expected)}")
        return None

    def unwrap(self) -> None:
        """Restores the schedule's and its stages' own methods."""
        for obj, name, previous in reversed(self._saved):
            if previous is None:
                obj.__dict__.pop(name, None)
            else:
                obj.__dict__[name] = previous
        self._saved.clear()
        for obj in [self.schedule, *self._stages]:
            obj.__dict__.pop(_WRAP_ATTR, None)

    # -- internals ----------------------------------------------------------------------------

    def _replace(self, obj: Any, name: str, new: Callable[..., Any]) -> Callable[..., Any]:
        original: Callable[..., Any] = getattr(obj, name)
        self._saved.append((obj, name, obj.__dict__.get(name)))
        obj.__dict__[name] = new
        return original

    def _begin_step(self) -> None:
        if self.order is not None:
            self.expected = list(self.order.ranks[self.rank])
        else:
            self.expected = _executed_rank_steps(self.schedule, self.rank)
        self._overlaps = {(s.stage, s.microbatch): s for s in self.expected
                          if s.kind == "overlap_f_b"}
        self._pending = None
        self.executed = []
        self.calls = []
        self.hook.on_step_begin()
        self._active = True

    def _close_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self.hook.on_instruction_end("overlap_f_b", pending.microbatch, pending.stage)

    def _announce(self, step: Step) -> None:
        if self.check_order:
            self.executed.append(step)
        self.hook.on_instruction_begin(step.kind, step.microbatch, step.stage)

    def _run(self, kind: str, stage: int, microbatch: int, call: Callable[[], Any]) -> Any:
        if not self._active:
            return call()  # outside step() (or inside eval()): not announced
        if self.check_order:
            self.calls.append(Step(kind, stage, microbatch))
        pending = self._pending
        if pending is not None:
            if pending.backward == Step(kind, stage, microbatch):
                try:
                    return call()
                finally:
                    self._close_pending()
            self._close_pending()  # its backward half did not come next
        if kind == "forward" and (stage, microbatch) in self._overlaps:
            overlap = self._overlaps[(stage, microbatch)]
            self._announce(overlap)
            try:
                result = call()
            except BaseException:
                self.hook.on_instruction_end("overlap_f_b", microbatch, stage)
                raise
            self._pending = overlap
            return result
        self._announce(Step(kind, stage, microbatch))
        try:
            return call()
        finally:
            self.hook.on_instruction_end(kind, microbatch, stage)

    def _wrap_stage(self, stage: Any) -> None:
        index = int(stage.stage_index)

        def forward_one_chunk(fwd_chunk_id: int, *args: Any, **kwargs: Any) -> Any:
            return self._run("forward", index, fwd_chunk_id,
                             lambda: forward(fwd_chunk_id, *args, **kwargs))

        def backward_one_chunk(bwd_chunk_id: int, *args: Any, **kwargs: Any) -> Any:
            # (bwd_chunk_id, loss=None, full_backward=True, last_backward=False); the single-stage
            # schedules do not pass full_backward: a full backward.
            full = kwargs["full_backward"] if "full_backward" in kwargs else (
                args[1] if len(args) > 1 else True)
            return self._run("backward" if full else "backward_input", index, bwd_chunk_id,
                             lambda: backward(bwd_chunk_id, *args, **kwargs))

        def backward_weight_one_chunk(bwd_chunk_id: int, *args: Any, **kwargs: Any) -> Any:
            return self._run("backward_weight", index, bwd_chunk_id,
                             lambda: weight(bwd_chunk_id, *args, **kwargs))

        forward = self._replace(stage, "forward_one_chunk", forward_one_chunk)
        backward = self._replace(stage, "backward_one_chunk", backward_one_chunk)
        weight = self._replace(stage, "backward_weight_one_chunk", backward_weight_one_chunk)
        stage.__dict__[_WRAP_ATTR] = self
        self._stages.append(stage)

    def _wrap_schedule(self) -> None:
        schedule = self.schedule

        def step(*args: Any, **kwargs: Any) -> Any:
            if self._eval_depth or self._active:
                return original_step(*args, **kwargs)  # eval(), or step() calling itself
            self._begin_step()
            try:
                result = original_step(*args, **kwargs)
                self._close_pending()
            except BaseException:
                self._active = False
                self._pending = None
                self.hook.on_step_abort()
                raise
            self._active = False
            self.hook.on_step_end()
            return result

        def eval(*args: Any, **kwargs: Any) -> Any:  # noqa: A001 (torch's name)
            self._eval_depth += 1
            try:
                self.hook.on_unplanned_work()
                return original_eval(*args, **kwargs)
            finally:
                self._eval_depth -= 1

        original_step = self._replace(schedule, "step", step)
        original_eval = self._replace(schedule, "eval", eval)
        schedule.__dict__[_WRAP_ATTR] = self


def wrap_schedule(schedule: Any, hook: PerseusHook, *, check_order: bool = False,
                  order: Optional[ScheduleOrder] = None) -> ScheduleWrapper:
    """Announces every computation of a torch.distributed.pipelining schedule to `hook`.

    Wraps (on the instances) each local stage's forward_one_chunk ("forward"),
    backward_one_chunk ("backward" with full_backward, the default, else "backward_input")
    and backward_weight_one_chunk ("backward_weight"), with the stage index and microbatch,
    and the schedule's step(): on_step_begin before it, on_step_end after it, on_step_abort
    if it raises (the exception propagates; the next step starts clean). An OVERLAP_F_B
    action of the schedule's own order (schedule_from_torch, or `order`) is announced as
    one "overlap_f_b" computation, from before its forward half to after its backward half.

    eval() runs at the highest clock (hook.on_unplanned_work) and is not announced: plans
    cover training steps. Stage calls outside step() are not announced either. Custom
    functions registered with register_custom_function run instead of the stage methods
    for their action types: the hook hears only the stage methods they call.

    With `check_order`, `wrapper.executed` lists the computations the last step ran and
    `wrapper.mismatch()` compares them with the schedule's order. Wrapping again with the
    same hook returns the existing wrapper; with another hook it raises InvalidInputError
    (call `wrapper.unwrap()` first).
    """
    _require_pipelining()
    from torch.distributed.pipelining import schedules as ts

    existing: Optional[ScheduleWrapper] = schedule.__dict__.get(_WRAP_ATTR)
    if existing is not None:
        if existing.hook is hook and order is None:
            existing.check_order = existing.check_order or check_order
            return existing
        raise InvalidInputError(f"this {type(schedule).__name__} is already wrapped for another "
                                "hook or order; call unwrap() on its wrapper first")
    if isinstance(schedule, ts.PipelineScheduleSingle):
        stages = [schedule._stage]
        rank = int(schedule._stage.stage_index)
    elif isinstance(schedule, ts.PipelineScheduleMulti):
        stages = list(schedule._stages)
        rank = int(schedule.rank)
    else:
        raise InvalidInputError(f"{type(schedule).__name__} is not a torch.distributed."
                                "pipelining schedule")
    for stage in stages:
        if stage.__dict__.get(_WRAP_ATTR) is not None:
            raise InvalidInputError(f"stage {stage.stage_index} is already wrapped (by another "
                                    "schedule's wrapper); unwrap that one first")
    if order is None:
        _executed_rank_steps(schedule, rank)  # raises now for schedules of unknown order
    elif not 0 <= rank < len(order.ranks):
        raise InvalidInputError(f"the order has {len(order.ranks)} ranks; this is rank {rank}")
    wrapper = ScheduleWrapper(schedule, hook, rank, check_order, order)
    for stage in stages:
        wrapper._wrap_stage(stage)
    wrapper._wrap_schedule()
    return wrapper
