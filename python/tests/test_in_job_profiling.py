"""In-job profiling in PerseusHook: a rank measures itself on a simulated GPU inside its
training loop, uploads its rows and blocking power to a real `perseus serve` through the real
Client, and follows the plan once the coordinator has it; the report's measured savings."""

import pathlib
import time
from typing import Any, Dict, List, Optional

import pytest

import perseus
import perseus.torch as pt
from http_helpers import call, serve, wait_for_reports

# One rank's iteration: 2 microbatches of 1F1B on stage 0, waiting 20 ms between computations
# (its communication), at the blocking power.
ORDER = [("forward", 0), ("forward", 1), ("backward", 0), ("backward", 1)]
WAIT_S = 0.02


def iteration(hook: pt.PerseusHook, gpu: Any) -> None:
    hook.on_step_begin()
    for kind, mb in ORDER:
        gpu.block(WAIT_S)
        hook.on_instruction_begin(kind, mb, 0)
        gpu.run(kind)
        hook.on_instruction_end(kind, mb, 0)
    gpu.block(WAIT_S)
    hook.on_step_end()


class RecordingClient:
    """Stands in for perseus.Client (no coordinator): no plan until given one; records the
    reports and the uploaded profile."""

    def __init__(self) -> None:
        self.plan_version = 0
        self.plan: List[Dict[str, Any]] = []
        self.phases: List[str] = []
        self.progress: List[Optional[float]] = []
        self.submitted: Optional[tuple] = None

    def instructions(self) -> List[Dict[str, Any]]:
        return self.plan

    def frequency_for(self, kind: str, microbatch: int, stage: int = -1) -> int:
        return 1410

    def end_iteration(self, iteration: int, time_s: float, energy_j: float,
                      mismatches: int = 0, phase: str = "", plan_version: int = -1,
                      profiling_progress: Optional[float] = None) -> None:
        self.phases.append(phase)
        self.progress.append(profiling_progress)

    def submit_measurements(self, rows: List[Dict[str, Any]], blocking_power_w: float) -> None:
        self.submitted = (rows, blocking_power_w)


def profile_rows(path: str, stage: int) -> Dict[tuple, tuple]:
    rows = {}
    for line in pathlib.Path(path).read_text().splitlines()[1:]:
        f = line.split(",")
        if int(f[0]) == stage:
            rows[(f[1], int(f[2]))] = (float(f[3]), float(f[4]))
    return rows


def test_the_rank_measures_the_profile_and_the_blocking_power_it_runs(gpt3_profile):
    gpu = perseus.SimBackend(gpt3_profile, blocking_power_w=80.0)[0]
    clocks = [1410, 1200, 1005, 900]
    client = RecordingClient()
    profile = pt.InJobProfile(frequencies_mhz=clocks, warmup_iterations=1, measure_iterations=2)
    assert profile.max_iterations == 12
    hook = pt.PerseusHook(client=client, set_frequency=gpu.lock_sm_clock, device=gpu,
                          strict=True, profile=profile, baseline_iterations=2)
    seen = []
    for _ in range(1 + 2 + 12 + 2):
        iteration(hook, gpu)
        seen.append((hook.phase, gpu.current_sm_clock()))
    assert [p for p, _ in seen] == ["warmup"] + ["baseline"] * 2 + ["profiling"] * 12 + \
        ["baseline"] * 2  # no plan yet after profiling: the highest clock
    # One clock per profiling iteration, highest first, 3 iterations each (1 warm-up).
    assert [mhz for p, mhz in seen if p == "profiling"] == [m for m in clocks for _ in range(3)]
    assert all(mhz == 1410 for p, mhz in seen if p != "profiling")
    assert client.phases == [p for p, _ in seen]
    progress = [x for x, p in zip(client.progress, client.phases) if p == "profiling"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert hook.profiler is not None and hook.profiler.iterations == 12
    # The simulated GPU's own profile, measured back exactly; its blocking power too.
    assert client.submitted is not None
    rows, blocking = client.submitted
    truth = profile_rows(gpt3_profile, 0)
    assert len(rows) == 2 * len(clocks)
    for row in rows:
        t, e = truth[(row["instruction"], row["frequency_mhz"])]
        assert row["time_s"] == pytest.approx(t, rel=1e-6)
        assert row["energy_j"] == pytest.approx(e, rel=1e-3)  # the counter counts whole mJ
    assert blocking == pytest.approx(80.0, rel=1e-3)
    # The plan arrives: the next step follows it.
    client.plan = [{"kind": k, "stage": 0, "microbatch": mb, "frequency_mhz": 1005}
                   for k, mb in ORDER]
    client.plan_version = 1
    iteration(hook, gpu)
    assert hook.phase == "planned" and gpu.current_sm_clock() == 1005


def test_a_plan_that_arrives_while_profiling_ends_it(gpt3_profile):
    gpu = perseus.SimBackend(gpt3_profile)[0]
    client = RecordingClient()
    hook = pt.PerseusHook(client=client, set_frequency=gpu.lock_sm_clock, device=gpu,
                          profile=pt.InJobProfile(frequencies_mhz=[1410, 1200, 1005]),
                          warmup_iterations=0, baseline_iterations=0)
    iteration(hook, gpu)
    assert hook.phase == "profiling"
    client.plan = [{"kind": k, "stage": 0, "microbatch": mb, "frequency_mhz": 1200}
                   for k, mb in ORDER]
    client.plan_version = 1
    iteration(hook, gpu)
    assert hook.phase == "planned" and client.submitted is None


def test_bad_profiling_options_are_refused(gpt3_profile):
    client = RecordingClient()
    with pytest.raises(perseus.InvalidInputError, match="kinds"):
        pt.PerseusHook(client=client, profile=pt.InJobProfile(frequencies_mhz=[1410],
                                                              kinds=["overlap_f_b"]))
    with pytest.raises(perseus.InvalidInputError):
        pt.PerseusHook(client=client, profile=pt.InJobProfile(frequencies_mhz=[]))
    with pytest.raises(perseus.InvalidInputError, match="needs a client"):
        pt.PerseusHook(plan=[], profile=pt.InJobProfile(frequencies_mhz=[1410]))


def test_a_kind_never_run_ends_profiling_without_stopping_training(gpt3_profile):
    gpu = perseus.SimBackend(gpt3_profile)[0]
    client = RecordingClient()
    # The rank never runs a backward_weight: its clock's rows cannot be made.
    hook = pt.PerseusHook(client=client, set_frequency=gpu.lock_sm_clock, device=gpu,
                          strict=False, warmup_iterations=0, baseline_iterations=0,
                          profile=pt.InJobProfile(frequencies_mhz=[1410, 1200],
                                                  kinds=["forward", "backward_weight"],
                                                  warmup_iterations=0, measure_iterations=1))
    with pytest.warns(pt.PlanMismatchWarning, match="in-job profiling failed"):
        iteration(hook, gpu)
    iteration(hook, gpu)  # training goes on at the highest clock
    assert hook.phase == "baseline" and gpu.current_sm_clock() == 1410
    assert hook.metrics.errors == 1 and client.submitted is None


# The real Client and coordinator: 2 stages, each rank profiles itself, the job plans with the
# measured blocking power, the ranks follow the plan, and the report's measured savings come
# from the hooks' baseline and planned iterations.
def test_in_job_profiling_with_a_real_coordinator(tmp_path, perseus_bin, gpt3_profile):
    clocks = [1410, 1305, 1200, 1095, 1005, 900]
    with serve(perseus_bin, tmp_path / "in_job.db") as base:
        job = call(base, "POST", "/v1/jobs", {"name": "in-job", "stages": 2,
                                             "microbatches": 2})["job_id"]
        sim = perseus.SimBackend(gpt3_profile, blocking_power_w=80.0)
        ranks = []
        for rank in range(2):
            gpu = sim[rank]
            client = perseus.Client(base, job_id=job, rank=rank, pp_rank=rank,
                                    frequencies_mhz=clocks, poll_interval_s=0.05)
            hook = pt.PerseusHook(client=client, set_frequency=gpu.lock_sm_clock, device=gpu,
                                  strict=True, rank=rank, baseline_iterations=2,
                                  profile=pt.InJobProfile(frequencies_mhz=clocks,
                                                          measure_iterations=1))
            ranks.append((gpu, client, hook))
        # Each rank runs its stage's 1F1B order (stage 1: F0 B0 F1 B1).
        orders = [ORDER, [("forward", 0), ("backward", 0), ("forward", 1), ("backward", 1)]]
        deadline = time.monotonic() + 120
        planned = 0
        while planned < 3:
            assert time.monotonic() < deadline, call(base, "GET", f"/v1/jobs/{job}")
            for (gpu, _, hook), order in zip(ranks, orders):
                hook.on_step_begin()
                for kind, mb in order:
                    gpu.block(WAIT_S)
                    hook.on_instruction_begin(kind, mb, hook.rank)
                    gpu.run(kind)
                    hook.on_instruction_end(kind, mb, hook.rank)
                hook.on_step_end()
            if all(h.phase == "planned" for _, _, h in ranks):
                planned += 1
            else:
                time.sleep(0.01)  # the plan is being computed
        state = call(base, "GET", f"/v1/jobs/{job}")
        assert state["state"] == "ready"
        assert state["blocking_power"]["source"] == "measured"
        assert state["blocking_power"]["w"] == pytest.approx(80.0, rel=0.01)
        assert all(c.measurements_status == "accepted" for _, c, _ in ranks)
        total = sum(h.metrics.iterations for _, _, h in ranks)
        measured = wait_for_reports(base, job, total)["measured"]
        assert measured["pipelines"][0]["baseline_iterations"] >= 2
        assert measured["pipelines"][0]["perseus_iterations"] >= 3
        # Simulated GPUs without noise: the planned iterations use less energy.
        assert measured["saving_pct"] > 0
        for _, client, _ in ranks:
            del client
