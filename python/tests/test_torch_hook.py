"""PerseusHook on its own: planned clocks, matching, and the failure policy (strict raises;
production warns once, falls back to the highest clock, counts, never raises); and its counts
reaching a real coordinator's /metrics."""

import pathlib
import time
import warnings
from typing import Any, Dict, List, Optional

import pytest

import perseus
import perseus.torch as pt
from http_helpers import call, metric, serve, wait_for_reports

PLAN = [
    {"kind": "forward", "microbatch": 0, "frequency_mhz": 1410},
    {"kind": "forward", "microbatch": 1, "frequency_mhz": 1410},
    {"kind": "backward", "microbatch": 0, "frequency_mhz": 1005},
    {"kind": "backward", "microbatch": 1, "frequency_mhz": 1200},
]
ORDER = [("forward", 0), ("forward", 1), ("backward", 0), ("backward", 1)]

# Two model chunks on one rank (stages 0 and 2), with an overlapped pair and split backwards.
CHUNKED = [
    {"kind": "forward", "stage": 0, "microbatch": 0, "frequency_mhz": 1300},
    {"kind": "forward", "stage": 2, "microbatch": 0, "frequency_mhz": 1200},
    {"kind": "overlap_f_b", "stage": 0, "microbatch": 1, "frequency_mhz": 1100,
     "backward": {"kind": "backward", "stage": 2, "microbatch": 0}},
    {"kind": "forward", "stage": 2, "microbatch": 1, "frequency_mhz": 1000},
    {"kind": "backward_input", "stage": 2, "microbatch": 1, "frequency_mhz": 1000},
    {"kind": "backward_input", "stage": 0, "microbatch": 0, "frequency_mhz": 900},
    {"kind": "backward_weight", "stage": 2, "microbatch": 1, "frequency_mhz": 900},
    {"kind": "backward", "stage": 0, "microbatch": 1, "frequency_mhz": 900},
    {"kind": "backward_weight", "stage": 0, "microbatch": 0, "frequency_mhz": 900},
]


def run(hook, order, with_stage=False):
    hook.on_step_begin()
    for item in order:
        kind, mb = item[0], item[1]
        stage = item[2] if with_stage else None
        hook.on_instruction_begin(kind, mb, stage)
        hook.on_instruction_end(kind, mb, stage)
    return hook.on_step_end()


def chunked_order():
    return [(s["kind"], s["microbatch"], s["stage"]) for s in CHUNKED]


class RecordingClient:
    """Stands in for perseus.Client (no coordinator): a plan, a highest clock, the reports."""

    def __init__(self, plan: List[Dict[str, Any]], highest: int = 1410) -> None:
        self.plan_version = 1
        self.plan = plan
        self.highest = highest
        self.reports: List[tuple] = []
        self.phases: List[str] = []
        self.fail_instructions = False

    def instructions(self) -> List[Dict[str, Any]]:
        if self.fail_instructions:
            raise ConnectionError("coordinator gone")
        return self.plan

    def frequency_for(self, kind: str, microbatch: int, stage: int = -1) -> int:
        return self.highest

    def end_iteration(self, iteration: int, time_s: float, energy_j: float,
                      mismatches: int = 0, phase: str = "", plan_version: int = -1,
                      profiling_progress: Optional[float] = None) -> None:
        self.reports.append((iteration, time_s, energy_j, mismatches))
        self.phases.append(phase)


def test_sets_planned_clocks_only_when_they_change():
    applied, syncs = [], []
    hook = pt.PerseusHook(plan=PLAN, set_frequency=applied.append,
                          synchronize=lambda: syncs.append(1))
    run(hook, ORDER)
    assert applied == [1410, 1005, 1200]
    # Synchronised at step begin/end and before each of the 3 clock changes, not per computation.
    assert len(syncs) == 2 + 3
    assert hook.metrics.clock_changes == 3 and hook.metrics.iterations == 1
    assert hook.last_report.computations == 4 and hook.last_report.mismatches == 0


def test_out_of_order_computation_is_a_clear_error():
    hook = pt.PerseusHook(plan=PLAN, set_frequency=lambda mhz: None, rank=3)
    hook.on_step_begin()
    hook.on_instruction_begin("forward", 0)
    hook.on_instruction_end("forward", 0)
    with pytest.raises(pt.PlanMismatchError) as error:
        hook.on_instruction_begin("backward", 0)
    assert str(error.value) == ("rank 3 announced backward 0 as computation 1 of the iteration, "
                                "but the plan expects forward 1 there")
    assert isinstance(error.value, ValueError)
    assert hook.metrics.mismatches == 1


def test_nesting_and_step_rules():
    hook = pt.PerseusHook(plan=PLAN)
    with pytest.raises(pt.PlanMismatchError):
        hook.on_instruction_begin("forward", 0)  # outside a step
    hook.on_step_begin()
    hook.on_instruction_begin("forward", 0)
    with pytest.raises(pt.PlanMismatchError):
        hook.on_instruction_begin("forward", 1)  # the previous one has not ended
    with pytest.raises(pt.PlanMismatchError):
        hook.on_instruction_end("forward", 1)
    hook.on_instruction_end("forward", 0)
    with pytest.raises(pt.PlanMismatchError) as error:
        hook.on_step_end()  # 1 of 4 computations
    assert "ran 1 computations" in str(error.value)
    # The strict failure ended the step: the next one starts clean.
    assert hook.metrics.aborted_steps == 1
    run(hook, ORDER)
    assert hook.metrics.iterations == 1
    with pytest.raises(perseus.InvalidInputError):
        pt.PerseusHook(plan=PLAN).on_instruction_begin("sideways", 0)
    with pytest.raises(perseus.InvalidInputError):
        pt.PerseusHook(plan=[{"kind": "sideways", "microbatch": 0, "frequency_mhz": 1}])


def test_stage_is_matched_when_given():
    applied: List[int] = []
    hook = pt.PerseusHook(plan=CHUNKED, set_frequency=applied.append, rank=1)
    run(hook, chunked_order(), with_stage=True)
    assert applied == [1300, 1200, 1100, 1000, 900]
    # Without stages, (kind, microbatch) is matched: the same plan runs.
    run(hook, chunked_order())
    assert hook.metrics.iterations == 2 and hook.metrics.mismatches == 0
    # The wrong chunk is a mismatch that names the stages.
    hook.on_step_begin()
    with pytest.raises(pt.PlanMismatchError) as error:
        hook.on_instruction_begin("forward", 0, 2)
    assert str(error.value) == ("rank 1 announced forward 0 of stage 2 as computation 0 of the "
                                "iteration, but the plan expects forward 0 of stage 0 there")
    hook.on_step_abort()
    run(hook, chunked_order(), with_stage=True)
    assert hook.metrics.iterations == 3


def test_measures_on_the_device(gpt3_profile):
    gpu = perseus.SimBackend(gpt3_profile)[0]
    hook = pt.PerseusHook(plan=PLAN, set_frequency=gpu.lock_sm_clock, device=gpu)
    hook.on_step_begin()
    for kind, mb in ORDER:
        hook.on_instruction_begin(kind, mb)
        gpu.run(kind)
        hook.on_instruction_end(kind, mb)
    time_s, energy_j = hook.on_step_end()
    assert gpu.current_sm_clock() == 1200
    assert time_s > 0.2 and energy_j > 100
    assert (hook.last_report.time_s, hook.last_report.energy_j) == (time_s, energy_j)


def test_reports_to_the_client_and_takes_new_plans_at_step_boundaries():
    client = RecordingClient(PLAN)
    applied: List[int] = []
    hook = pt.PerseusHook(client=client, set_frequency=applied.append, warmup_iterations=0,
                          baseline_iterations=0)
    run(hook, ORDER)
    assert hook.plan_version == 1 and hook.last_report.plan_version == 1
    # A new version arrives mid-step: the running step keeps its plan.
    hook.on_step_begin()
    client.plan_version = 2
    client.plan = [dict(s, frequency_mhz=900) for s in PLAN]
    for kind, mb in ORDER:
        hook.on_instruction_begin(kind, mb)
        hook.on_instruction_end(kind, mb)
    hook.on_step_end()
    run(hook, ORDER)
    assert applied == [1410, 1005, 1200, 1410, 1005, 1200, 900]
    assert [r[0] for r in client.reports] == [0, 1, 2]
    assert [r[3] for r in client.reports] == [0, 0, 0]  # no mismatches
    assert hook.last_report.iteration == 2 and hook.last_report.plan_version == 2
    assert client.phases == ["planned"] * 3


def test_warmup_and_baseline_iterations_run_at_the_highest_clock_then_the_plan():
    client = RecordingClient(PLAN, highest=1500)
    applied: List[int] = []
    hook = pt.PerseusHook(client=client, set_frequency=applied.append, strict=True)
    for _ in range(6):
        run(hook, ORDER)  # default: 1 warm-up, 3 baseline; the plan is not checked then
    assert client.phases == ["warmup", "baseline", "baseline", "baseline", "planned", "planned"]
    assert applied == [1500, 1410, 1005, 1200, 1410, 1005, 1200]
    # Out of plan order in the baseline: no mismatch (no plan is followed).
    hook = pt.PerseusHook(client=client, set_frequency=applied.append, strict=True,
                          warmup_iterations=0, baseline_iterations=1)
    run(hook, list(reversed(ORDER)))
    assert hook.last_report.phase == "baseline" and hook.metrics.mismatches == 0
    with pytest.raises(pt.PlanMismatchError):
        run(hook, list(reversed(ORDER)))
    with pytest.raises(perseus.InvalidInputError, match="baseline_iterations"):
        pt.PerseusHook(client=client, baseline_iterations=-1)


def test_real_client_without_a_plan_runs_at_its_highest_clock():
    client = perseus.Client("http://127.0.0.1:9", job_id=1, rank=0, pp_rank=0,
                            frequencies_mhz=[1005, 1410, 1200], poll_interval_s=60)
    applied: List[int] = []
    hook = pt.PerseusHook(client=client, set_frequency=applied.append, strict=True)
    run(hook, ORDER)  # no plan yet: not a mismatch
    assert applied == [1410] and hook.metrics.mismatches == 0
    assert hook.highest_mhz() == 1410


def production(plan=PLAN, **kwargs):
    applied: List[int] = []
    hook = pt.PerseusHook(plan=plan, set_frequency=applied.append, strict=False, **kwargs)
    return hook, applied


def test_production_out_of_order_warns_once_and_falls_back():
    hook, applied = production(fallback_mhz=1500)
    wrong = [("forward", 0), ("backward", 0), ("forward", 1), ("backward", 1)]
    with pytest.warns(pt.PlanMismatchWarning, match="computation 1 of the iteration") as caught:
        run(hook, wrong)
        run(hook, wrong)
    assert len(caught) == 1  # once, not per mismatch
    assert applied == [1410, 1500, 1410, 1500]  # planned, then highest until the next step
    assert hook.metrics.mismatches == 2 and hook.metrics.fallback_steps == 2
    assert hook.metrics.iterations == 2
    assert hook.last_report.mismatches == 1 and hook.last_report.fallback
    run(hook, ORDER)  # right again: planned clocks, nothing counted
    assert applied[-3:] == [1410, 1005, 1200] and hook.metrics.mismatches == 2
    assert not hook.last_report.fallback


def test_production_highest_clock_comes_from_the_plan_without_fallback_mhz():
    hook, applied = production(plan=[dict(s, frequency_mhz=f) for s, f in
                                     zip(PLAN, [1005, 1100, 1005, 1005])])
    with pytest.warns(pt.PlanMismatchWarning):
        run(hook, [("backward", 1)])  # unknown at position 0, then too few
    assert applied == [1100]
    assert hook.metrics.mismatches == 1  # the count check is skipped once fallen back


@pytest.mark.parametrize("event", ["unknown computation", "begin without end",
                                   "step begin twice", "wrong count", "end without begin",
                                   "outside a step", "unknown kind", "too many"])
def test_production_never_raises(event):
    hook, applied = production(fallback_mhz=1500)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if event == "unknown computation":
            run(hook, [("forward", 0), ("backward_weight", 5), ("backward", 0), ("backward", 1)])
        elif event == "begin without end":
            hook.on_step_begin()
            hook.on_instruction_begin("forward", 0)
            hook.on_instruction_begin("forward", 1)
            hook.on_instruction_end("forward", 1)
            hook.on_step_end()
        elif event == "step begin twice":
            hook.on_step_begin()
            hook.on_instruction_begin("forward", 0)
            hook.on_step_begin()
            for kind, mb in ORDER:
                hook.on_instruction_begin(kind, mb)
                hook.on_instruction_end(kind, mb)
            hook.on_step_end()
        elif event == "wrong count":
            run(hook, ORDER[:3])
        elif event == "end without begin":
            hook.on_step_begin()
            hook.on_instruction_end("forward", 0)
            hook.on_step_end()
        elif event == "outside a step":
            hook.on_instruction_begin("forward", 0)
            hook.on_instruction_end("forward", 0)
            hook.on_step_end()
        elif event == "unknown kind":
            run(hook, [("sideways", 0)])
        elif event == "too many":
            run(hook, ORDER + [("forward", 2)])
    mismatch_warnings = [w for w in caught if issubclass(w.category, pt.PlanMismatchWarning)]
    assert len(mismatch_warnings) == 1, [str(w.message) for w in caught]
    assert hook.metrics.mismatches >= 1
    assert 1500 in applied
    if event not in ("outside a step", "step begin twice"):
        assert hook.metrics.fallback_steps == 1
    run(hook, ORDER)  # the next step follows its plan again
    assert applied[-1] == 1200 and not hook.last_report.fallback


def test_production_survives_a_failing_plan_source_and_clock_setter():
    client = RecordingClient(PLAN, highest=1500)
    applied: List[int] = []
    hook = pt.PerseusHook(client=client, set_frequency=applied.append, strict=False,
                          warmup_iterations=0, baseline_iterations=0)
    run(hook, ORDER)
    client.plan_version = 2
    client.fail_instructions = True
    with pytest.warns(pt.PlanMismatchWarning, match="the plan source failed"):
        run(hook, ORDER)
    assert hook.metrics.errors == 1 and hook.metrics.fallback_steps == 1
    assert [r[3] for r in client.reports] == [0, 1]  # the failed plan source: one mismatch
    assert hook.plan_version == 1  # kept the plan it had
    assert applied[-1] == 1500

    def broken(mhz: int) -> None:
        raise PermissionError("no clock control")

    hook = pt.PerseusHook(plan=PLAN, set_frequency=broken, strict=False)
    with pytest.warns(pt.PlanMismatchWarning, match="setting 1410 MHz failed"):
        run(hook, ORDER)
    # Each computation tries its clock again (the clock never changed): 4 failures.
    assert hook.metrics.errors == 4 and hook.metrics.iterations == 1
    assert hook.metrics.clock_changes == 0
    strict = pt.PerseusHook(plan=PLAN, set_frequency=broken, strict=True)
    strict.on_step_begin()
    with pytest.raises(PermissionError):
        strict.on_instruction_begin("forward", 0)


def test_step_abort_and_unplanned_work():
    applied: List[int] = []
    hook = pt.PerseusHook(plan=PLAN, set_frequency=applied.append, fallback_mhz=1500)
    hook.on_step_begin()
    hook.on_instruction_begin("forward", 0)
    hook.on_step_abort()  # an exception in the step
    hook.on_step_abort()  # a no-op outside a step
    assert hook.metrics.aborted_steps == 1 and hook.last_report is None
    assert hook.on_unplanned_work() == 1500
    run(hook, ORDER)
    assert applied == [1410, 1500, 1410, 1005, 1200]
    assert hook.metrics.as_dict()["iterations"] == 1


def test_needs_a_plan_source():
    with pytest.raises(perseus.InvalidInputError):
        pt.PerseusHook()


def test_production_mismatches_reach_the_coordinator(perseus_bin: str, gpt3_profile: str,
                                                    tmp_path: pathlib.Path) -> None:
    """A production hook on a real Client, run in the wrong order: the operator sees the
    mismatches in the coordinator's /metrics and /report."""
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        job = call(base, "POST", "/v1/jobs", {"name": "hook", "stages": 2, "microbatches": 2,
                                               "blocking_power_w": 83.64})["job_id"]
        clocks = list(range(1410, 854, -15))
        call(base, "POST", f"/v1/jobs/{job}/ranks",
              {"rank": 1, "pp_rank": 1, "dp_rank": 0, "frequencies_mhz": clocks})
        with open(gpt3_profile) as f:
            profile = "".join(line for i, line in enumerate(f)
                              if i == 0 or int(line.split(",")[0]) < 2)  # stages 0 and 1
        call(base, "PUT", f"/v1/jobs/{job}/profile", profile.encode(), "text/csv")
        deadline = time.time() + 60
        while call(base, "GET", f"/v1/jobs/{job}")["state"] != "ready":  # planned
            assert time.time() < deadline, "the job was not planned"
            time.sleep(0.05)
        client = perseus.Client(base, job_id=job, rank=0, pp_rank=0, frequencies_mhz=clocks,
                                poll_interval_s=60)
        assert client.wait_for_plan(0, 60)
        order = [(s["kind"], s["microbatch"]) for s in client.instructions()]
        assert len(order) == 4 and order[0] == ("forward", 0) and order[1] == ("forward", 1)
        wrong = [order[1], order[0]] + order[2:]
        applied: List[int] = []
        hook = pt.PerseusHook(client=client, set_frequency=applied.append, strict=False,
                              warmup_iterations=0, baseline_iterations=0)
        with pytest.warns(pt.PlanMismatchWarning, match="computation 0 of the iteration"):
            run(hook, wrong)
            run(hook, wrong)
        run(hook, order)
        assert hook.metrics.mismatches == 2 and hook.metrics.fallback_steps == 2
        assert hook.last_report is not None and hook.last_report.mismatches == 0
        assert applied[0] == 1410  # the first computation mismatched: the highest clock
        report = wait_for_reports(base, job, 3)
        assert metric(base, "perseus_plan_mismatches_total", job) == 2
        assert metric(base, "perseus_iterations_with_mismatches_total", job) == 2
        assert (report["plan_mismatches"], report["iterations_with_mismatches"]) == (2, 2)
