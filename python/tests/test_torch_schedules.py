"""perseus.torch against real torch.distributed.pipelining schedules (torch 2.13).

In one process on torch's fake process group: schedule_from_torch for the seven schedules
matches what torch says and its CSV goes through torch's own parser and loader and the
planner. In S processes on gloo: every schedule runs wrapped, with a strict hook whose plan
is the schedule's order, and the failure policy holds on a real pipeline."""

import csv
import io
from typing import Any, Dict, List

import pytest
import torch  # the project requires torch 2.13: no torch is a failure, not a skip
import torch.distributed as dist
from torch.distributed.pipelining import schedules as ts

import perseus
import perseus.torch as pt
import torch_helpers as th

S, M = 4, 8


def compute_cells(actions: List[Any]) -> List[str]:
    return [str(a) for a in actions if a is not None and a.is_compute_op]


@pytest.fixture(scope="module")
def orders() -> Dict[str, Any]:
    """Each schedule built as rank 0 and as rank S-1, with its order."""
    out = {}
    for name in th.SCHEDULES:
        first = th.build_fake(name, 0, S, M)
        last = th.build_fake(name, S - 1, S, M)
        out[name] = (first, last, pt.schedule_from_torch(first))
    return out


def test_torch_version():
    assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__


@pytest.mark.parametrize("name", th.SCHEDULES)
def test_order_is_what_torch_says(orders, name):
    first, last, order = orders[name]
    assert order.name == type(first).__name__
    assert (order.num_ranks, order.microbatches) == (S, M)
    assert order.num_stages == (2 * S if th.is_multi(name) else S)
    assert pt.schedule_from_torch(last) == order  # every rank's object knows every rank
    for rank in range(S):
        ours = [step.cell() for step in order.ranks[rank]]
        told = compute_cells(first.pipeline_order[rank])
        if hasattr(first, "pipeline_order_with_comms"):
            # What the runtime executes has the same computations in the same order.
            assert compute_cells(first.pipeline_order_with_comms[rank]) == told
        if name == "1F1B" and rank == S - 1:
            # torch 2.13's Schedule1F1B.pipeline_order numbers the last rank's forwards
            # from 1 (F1..F8); it runs F0 B0 F1 B1 ... (checked for real in the gloo test).
            shifted = [f"{s.stage}F{s.microbatch + 1}" if s.kind == "forward" else s.cell()
                       for s in order.ranks[rank]]
            assert told in (ours, shifted), told
        else:
            assert ours == told
        stages = {step.stage for step in order.ranks[rank]}
        assert stages == set(th.stages_of(name, rank, S))
        # Every stage's F for every microbatch, and its backward(s).
        for stage in stages:
            forwards = sorted(s.microbatch for s in order.ranks[rank]
                              if s.kind in ("forward", "overlap_f_b") and s.stage == stage)
            assert forwards == list(range(M))


@pytest.mark.parametrize("name", th.SCHEDULES)
def test_csv_is_torch_format(orders, name, tmp_path):
    first, _, order = orders[name]
    text = order.csv()
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == S
    for rank, row in enumerate(rows):
        actions = [ts._Action.from_str(cell) for cell in row]
        assert [str(a) for a in actions] == row
        assert [str(a) for a in actions] == [s.cell() for s in order.ranks[rank]]
    if isinstance(first, ts._PipelineScheduleRuntime):
        # torch's own compute-only dump, minus its empty (idle) cells, is the same CSV.
        dumped = tmp_path / "torch.csv"
        first._dump_csv(str(dumped), format="compute_only")
        with open(dumped, newline="") as f:
            assert [[c for c in row if c] for row in csv.reader(f)] == rows


@pytest.mark.parametrize("name", [n for n in th.SCHEDULES if th.is_multi(n)])
def test_torch_loads_the_csv(orders, name, tmp_path):
    """torch's runtime accepts our CSV (it validates it and adds the communication), and a
    schedule loaded with format="compute_comms" is read from what it executes."""
    first, _, order = orders[name]
    ours = tmp_path / "ours.csv"
    ours.write_text(order.csv())
    comms = tmp_path / "comms.csv"
    first._dump_csv(str(comms))  # compute_comms: what the runtime executes
    from torch.testing._internal.distributed.fake_pg import FakeStore
    for path, form in ((ours, "compute_only"), (comms, "compute_comms")):
        dist.init_process_group("fake", rank=1, world_size=S, store=FakeStore())
        try:
            stages = th.build(name, 1, S, M)._stages
            loaded = ts._PipelineScheduleRuntime(stages, M, loss_fn=th.loss_fn)
            loaded._load_csv(str(path), format=form)
        finally:
            dist.destroy_process_group()
        got = pt.schedule_from_torch(loaded)
        assert got.ranks == order.ranks
        assert got.name == "_PipelineScheduleRuntime"


PLANNER_SCHEDULES = ["GPipe", "1F1B", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble",
                     "ZBVZeroBubble"]


@pytest.mark.parametrize("name", PLANNER_SCHEDULES)
def test_planner_reads_the_csv(name, gpt3_profile, tmp_path):
    """The planner plans the CSV, and its plans list every rank's computations in the
    schedule's order, in the same vocabulary (the profile has 8 stages: 8 ranks for the
    single-stage schedules, 4 ranks x 2 for the others)."""
    ranks = 4 if th.is_multi(name) else 8
    order = pt.schedule_from_torch(th.build_fake(name, 0, ranks, M))
    path = tmp_path / "schedule.csv"
    path.write_text(order.csv())
    frontier = perseus.plan(gpt3_profile, schedule_file=str(path), blocking_power_w=83.64)
    plan = frontier.plan(frontier.t_min_index)
    assert [[pt.Step.from_plan_step(s) for s in rank] for rank in plan] == order.ranks


def test_planner_reads_overlaps(gpt3_profile, tmp_path):
    order = pt.schedule_from_torch(th.build_fake("DualPipeV", 0, 4, M))
    path = tmp_path / "schedule.csv"
    path.write_text(order.csv())
    frontier = perseus.plan(gpt3_profile, schedule_file=str(path), blocking_power_w=83.64)
    plan = frontier.plan(frontier.t_min_index)
    assert [[pt.Step.from_plan_step(s) for s in rank] for rank in plan] == order.ranks


def test_unknown_schedule_class_is_named():
    class MySchedule(ts.ScheduleGPipe):
        def _step_microbatches(self, *args, **kwargs):
            raise NotImplementedError

    from torch.testing._internal.distributed.fake_pg import FakeStore
    dist.init_process_group("fake", rank=0, world_size=2, store=FakeStore())
    try:
        stage = th.build("GPipe", 0, 2, 2)._stage
        schedule = MySchedule(stage, 2, loss_fn=th.loss_fn)
        with pytest.raises(perseus.InvalidInputError, match="MySchedule"):
            pt.schedule_from_torch(schedule)
        hook = pt.PerseusHook(plan=[])
        with pytest.raises(perseus.InvalidInputError, match="MySchedule"):
            pt.wrap_schedule(schedule, hook)
        # With an explicit order it can be wrapped.
        order = pt.schedule_from_torch(th.build("GPipe", 0, 2, 2))
        wrapper = pt.wrap_schedule(schedule, hook, order=order)
        assert wrapper.rank == 0
        with pytest.raises(perseus.InvalidInputError, match="already wrapped"):
            pt.wrap_schedule(schedule, pt.PerseusHook(plan=[]))
        wrapper.unwrap()
        assert "step" not in schedule.__dict__ and "forward_one_chunk" not in stage.__dict__
    finally:
        dist.destroy_process_group()


def test_step_plan_vocabulary():
    overlap = pt.Step("overlap_f_b", 0, 7, pt.Step("backward", 7, 3))
    assert overlap.cell() == "(0F7;7B3)OVERLAP_F_B"
    assert pt.Step("backward_input", 7, 0).cell() == "7I0"
    assert pt.Step("backward_weight", 7, 0).cell() == "7W0"
    step = overlap.as_plan_step(1005)
    assert step == {"kind": "overlap_f_b", "stage": 0, "microbatch": 7, "frequency_mhz": 1005,
                    "backward": {"kind": "backward", "stage": 7, "microbatch": 3}}
    assert pt.Step.from_plan_step(step) == overlap


# --- real pipelines: S processes on gloo --------------------------------------------------


@pytest.fixture(scope="module")
def gloo_runs(tmp_path_factory) -> List[Dict[str, Any]]:
    """2 ranks, 8 microbatches: every schedule (2 steps each), then the failure policy."""
    directory = tmp_path_factory.mktemp("gloo")
    return th.run_ranks(2, M, "all", str(directory), timeout_s=300)


@pytest.mark.parametrize("name", th.SCHEDULES)
def test_wrapped_schedule_runs_its_order(gloo_runs, name):
    for rank, result in enumerate(gloo_runs):
        got = result["schedules"][name]
        order = [row.split(",") for row in got["order"].splitlines()]
        assert got["expected"] == order[rank]
        for executed in got["executed"]:  # both steps
            assert executed == order[rank]
        assert got["mismatch"] is None
        # The stage methods torch called: the order with each overlap's halves in turn.
        halves = [part for cell in order[rank]
                  for part in (cell[1:].split(")")[0].split(";") if cell.startswith("(")
                               else [cell])]
        assert got["calls"] == halves
        metrics = got["metrics"]
        assert metrics["mismatches"] == 0 and metrics["iterations"] == 2
        assert metrics["computations"] == 2 * len(order[rank])
        assert got["report"]["computations"] == len(order[rank])
        assert got["applied"] == metrics["clock_changes"] > 0
    if name == "1F1B":  # torch executes F0 B0 F1 ... on the last rank (not F1 B0 F2 ...)
        assert gloo_runs[1]["schedules"][name]["executed"][0][:3] == ["1F0", "1B0", "1F1"]
    if name == "DualPipeV":  # announced as one computation each
        assert sum(c.endswith("OVERLAP_F_B")
                   for c in gloo_runs[0]["schedules"][name]["executed"][0]) > 0


def test_production_hook_warns_once_falls_back_and_counts(gloo_runs):
    for result in gloo_runs:
        got = result["policy"]["production"]
        assert len(got["warnings"]) == 1 and "computation 1 of the iteration" in got["warnings"][0]
        metrics = got["metrics"]
        assert metrics["iterations"] == 2 and metrics["mismatches"] == 2
        assert metrics["fallback_steps"] == 2
        # Computation 0 at its planned clock, then the highest clock for the rest of the step.
        assert got["applied"] == [1200, 1410, 1200, 1410]
        assert got["report"]["mismatches"] == 1 and got["report"]["fallback"] is True
        assert got["mismatch"] is None  # torch still ran its own order


def test_strict_hook_raises(gloo_runs):
    got = gloo_runs[0]["policy"]["strict"]
    assert got["raised"] == ("rank 0 announced backward 7 of stage 0 as computation 15 of the "
                             "iteration, but the plan expects backward 99 of stage 0 there")
    assert got["metrics"]["aborted_steps"] == 1 and got["metrics"]["iterations"] == 0
    assert gloo_runs[1]["policy"]["strict"]["raised"] is None


def test_exception_inside_step_ends_the_step(gloo_runs):
    got = gloo_runs[0]["policy"]["exception"]
    assert got["raised"] == "injected clock failure"
    assert got["metrics"]["aborted_steps"] == 1 and got["metrics"]["iterations"] == 0
    # The next step runs its plan.
    assert got["next_mismatch"] is None
    assert got["next_report"]["mismatches"] == 0 and got["metrics_after"]["iterations"] == 1


def test_eval_is_not_announced(gloo_runs):
    for result in gloo_runs:
        got = result["policy"]["eval"]
        assert got["applied_first"] == [1410]  # eval at the highest clock
        assert got["metrics"]["iterations"] == 1 and got["metrics"]["mismatches"] == 0
        assert got["metrics"]["computations"] == 16  # the step's, none of eval's
