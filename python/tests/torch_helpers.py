"""Real torch.distributed.pipelining schedules for the perseus.torch tests: built in one
process on torch's fake process group, or run for real in S processes on gloo (CPU)."""

from __future__ import annotations

import json
import os
import pathlib
import time
import traceback
import warnings
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist
from torch.distributed.pipelining import PipelineStage
from torch.distributed.pipelining import schedules as ts
from torch.distributed.pipelining._utils import generate_rank_to_stage_mapping

# The seven schedules of torch 2.13, by get_schedule_class name.
SCHEDULES = ["GPipe", "1F1B", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble",
             "ZBVZeroBubble", "DualPipeV"]
WIDTH = 4
MICROBATCH_ROWS = 2


def is_multi(name: str) -> bool:
    return issubclass(ts.get_schedule_class(name), ts.PipelineScheduleMulti)


def stages_of(name: str, rank: int, num_ranks: int) -> List[int]:
    """The model stages rank `rank` holds: one for single-stage schedules, two otherwise
    (V-shaped for ZBVZeroBubble and DualPipeV: stages r and 2S-1-r)."""
    if not is_multi(name):
        return [rank]
    cls = ts.get_schedule_class(name)
    style = "v" if cls in (ts.ScheduleZBVZeroBubble, ts.ScheduleDualPipeV) else "loop"
    return generate_rank_to_stage_mapping(num_ranks, 2 * num_ranks, style=style)[rank]


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(output, target)


def build(name: str, rank: int, num_ranks: int, microbatches: int,
          modules: Optional[Callable[[int], torch.nn.Module]] = None) -> Any:
    """The schedule `name` for this rank (the process group must be initialised)."""
    cls = ts.get_schedule_class(name)
    indices = stages_of(name, rank, num_ranks)
    total = len(indices) * num_ranks
    make = modules or (lambda index: torch.nn.Linear(WIDTH, WIDTH))
    # Static shapes (input_args/output_args): no metadata exchange at the first step, which
    # would need numpy (recv_object_list).
    # The example input of a later stage requires grad: its gradient goes back.
    def example(requires_grad: bool) -> torch.Tensor:
        return torch.zeros(MICROBATCH_ROWS, WIDTH, requires_grad=requires_grad)

    stages = [PipelineStage(make(i), i, total, torch.device("cpu"), input_args=example(i > 0),
                            output_args=example(True)) for i in indices]
    if is_multi(name):
        return cls(stages, microbatches, loss_fn=loss_fn)
    return cls(stages[0], microbatches, loss_fn=loss_fn)


def build_fake(name: str, rank: int, num_ranks: int, microbatches: int) -> Any:
    """Builds the schedule in this process on torch's fake process group (nothing runs)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", rank=rank, world_size=num_ranks, store=FakeStore())
    try:
        return build(name, rank, num_ranks, microbatches)
    finally:
        dist.destroy_process_group()


# --- multi-process runs ----------------------------------------------------------------------


def _model(index: int) -> torch.nn.Module:
    torch.manual_seed(100 + index)  # the same weights on every run
    return torch.nn.Sequential(torch.nn.Linear(WIDTH, WIDTH), torch.nn.Tanh())


def _data(microbatches: int) -> tuple:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(MICROBATCH_ROWS * microbatches, WIDTH, generator=generator)
    y = torch.randn(MICROBATCH_ROWS * microbatches, WIDTH, generator=generator)
    return x, y


def _step(schedule: Any, rank: int, microbatches: int) -> None:
    x, y = _data(microbatches)
    losses: List[torch.Tensor] = []
    schedule.step(x, target=y, losses=losses)


def _scenario_schedules(rank: int, num_ranks: int, microbatches: int) -> Dict[str, Any]:
    """Each of the seven schedules: wrapped, a strict hook with the order as its plan, 2 steps."""
    import perseus.torch as pt

    out: Dict[str, Any] = {}
    for name in SCHEDULES:
        schedule = build(name, rank, num_ranks, microbatches, _model)
        order = pt.schedule_from_torch(schedule)
        plan = order.plan(lambda r, step: 1000 + 10 * step.microbatch + step.stage)[rank]
        applied: List[int] = []
        hook = pt.PerseusHook(plan=plan, set_frequency=applied.append, strict=True, rank=rank)
        wrapper = pt.wrap_schedule(schedule, hook, check_order=True)
        assert pt.wrap_schedule(schedule, hook) is wrapper  # idempotent
        executed = []
        for _ in range(2):
            _step(schedule, rank, microbatches)
            executed.append([s.cell() for s in wrapper.executed])
        calls = [s.cell() for s in wrapper.calls]
        out[name] = {"order": order.csv(), "executed": executed, "calls": calls,
                     "expected": [s.cell() for s in wrapper.expected],
                     "mismatch": wrapper.mismatch(), "metrics": hook.metrics.as_dict(),
                     "applied": len(applied), "report": vars(hook.last_report)}
    return out


def _scenario_policy(rank: int, num_ranks: int, microbatches: int) -> Dict[str, Any]:
    """1F1B with wrong plans: production warns once, falls back and counts; strict raises
    (on rank 0's last computation, so no rank waits for it); an exception inside step() ends
    the step; the next step runs its plan."""
    import perseus.torch as pt

    out: Dict[str, Any] = {}
    schedule = build("1F1B", rank, num_ranks, microbatches, _model)
    order = pt.schedule_from_torch(schedule)
    good = order.plan(lambda r, step: 1200 - 10 * step.microbatch)[rank]
    wrong = [dict(s) for s in good]
    wrong[1], wrong[2] = wrong[2], wrong[1]  # out of order from the second computation on

    # Production: two steps with the wrong plan.
    applied: List[int] = []
    hook = pt.PerseusHook(plan=wrong, set_frequency=applied.append, strict=False, rank=rank,
                          fallback_mhz=1410)
    wrapper = pt.wrap_schedule(schedule, hook, check_order=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _step(schedule, rank, microbatches)
        _step(schedule, rank, microbatches)
    out["production"] = {"warnings": [str(w.message) for w in caught
                                      if issubclass(w.category, pt.PlanMismatchWarning)],
                         "metrics": hook.metrics.as_dict(), "report": vars(hook.last_report),
                         "applied": applied, "mismatch": wrapper.mismatch()}
    wrapper.unwrap()

    # Strict: rank 0's last computation is not the planned one.
    strict_plan = [dict(s) for s in good]
    if rank == 0:
        strict_plan[-1]["microbatch"] = 99
    hook = pt.PerseusHook(plan=strict_plan, set_frequency=lambda mhz: None, strict=True,
                          rank=rank)
    wrapper = pt.wrap_schedule(schedule, hook)
    try:
        _step(schedule, rank, microbatches)
        out["strict"] = {"raised": None}
    except pt.PlanMismatchError as error:
        out["strict"] = {"raised": str(error)}
    out["strict"]["metrics"] = hook.metrics.as_dict()
    wrapper.unwrap()

    # An exception inside step(): the clock setter fails at rank 0's last computation, once.
    fail = {"armed": rank == 0}
    last = good[-1]["frequency_mhz"]

    def set_frequency(mhz: int) -> None:
        if fail["armed"] and mhz == last and hook._position == len(good) - 1:
            fail["armed"] = False
            raise RuntimeError("injected clock failure")

    hook = pt.PerseusHook(plan=good, set_frequency=set_frequency, strict=True, rank=rank)
    wrapper = pt.wrap_schedule(schedule, hook, check_order=True)
    try:
        _step(schedule, rank, microbatches)
        raised = None
    except RuntimeError as error:
        raised = str(error)
    after_error = {"raised": raised, "metrics": hook.metrics.as_dict()}
    _step(schedule, rank, microbatches)  # the next step runs its plan
    after_error["next_mismatch"] = wrapper.mismatch()
    after_error["next_report"] = vars(hook.last_report)
    after_error["metrics_after"] = hook.metrics.as_dict()
    out["exception"] = after_error

    # eval() is not announced and runs at the highest clock.
    applied = []
    hook = pt.PerseusHook(plan=good, set_frequency=applied.append, strict=True, rank=rank,
                          fallback_mhz=1410)
    wrapper.unwrap()
    wrapper = pt.wrap_schedule(schedule, hook)
    x, y = _data(microbatches)
    with torch.no_grad():
        schedule.eval(x, target=y)
    _step(schedule, rank, microbatches)
    out["eval"] = {"applied_first": applied[:1], "metrics": hook.metrics.as_dict()}
    return out


def _scenario_all(rank: int, num_ranks: int, microbatches: int) -> Dict[str, Any]:
    return {"schedules": _scenario_schedules(rank, num_ranks, microbatches),
            "policy": _scenario_policy(rank, num_ranks, microbatches)}


SCENARIOS = {"schedules": _scenario_schedules, "policy": _scenario_policy, "all": _scenario_all}


def worker(rank: int, num_ranks: int, microbatches: int, scenario: str, directory: str) -> None:
    """One pipeline rank: gloo on CPU via a FileStore (no ports to pick), writes its results
    to directory/rank{rank}.json."""
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    store = dist.FileStore(os.path.join(directory, "store"), num_ranks)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=num_ranks)
    result: Dict[str, Any]
    try:
        result = {"ok": SCENARIOS[scenario](rank, num_ranks, microbatches)}
    except BaseException:  # noqa: BLE001 (reported to the test)
        result = {"error": traceback.format_exc()}
    pathlib.Path(directory, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def run_ranks(num_ranks: int, microbatches: int, scenario: str, directory: str,
              timeout_s: float = 240.0) -> List[Dict[str, Any]]:
    """Runs `worker` in `num_ranks` spawned processes; returns each rank's results. Kills the
    processes and fails after `timeout_s`; fails with a rank's traceback if one raised."""
    import torch.multiprocessing as mp

    context = mp.start_processes(worker, args=(num_ranks, microbatches, scenario, directory),
                                 nprocs=num_ranks, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise AssertionError(f"the {num_ranks} ranks did not finish in {timeout_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(10)
    results = []
    for rank in range(num_ranks):
        result = json.loads(pathlib.Path(directory, f"rank{rank}.json").read_text())
        if "error" in result:
            raise AssertionError(f"rank {rank} failed:\n{result['error']}")
        results.append(result["ok"])
    return results
