import json
import subprocess
import threading
import time

import pytest

import perseus


def test_plan_matches_the_cli(gpt3_profile, perseus_bin):
    frontier = perseus.plan(gpt3_profile, stages=8, microbatches=12, tp=8,
                            blocking_power_w=83.64, time_scale=10, energy_scale=10)
    cli = json.loads(subprocess.run(
        [perseus_bin, "demo", "--json"], check=True, capture_output=True, text=True).stdout)
    assert len(frontier) == cli["frontier_points"]
    fastest = frontier.points[frontier.t_min_index]
    # The CLI's energies are for the whole job; the frontier's for one pipeline (dp 1 here).
    assert fastest.time_s == cli["t_min"]["time"]
    assert abs(fastest.energy_j - cli["t_min"]["energy"]) < 1e-6 * fastest.energy_j
    assert frontier.all_max[0] == cli["all_max"]["time"]


def test_plans_per_rank_in_execution_order(gpt3_profile):
    frontier = perseus.plan(gpt3_profile, stages=8, microbatches=4, blocking_power_w=83.64)
    plan = frontier.plan(frontier.t_min_index)
    assert len(plan) == 8
    for rank in plan:
        assert len(rank) == 8  # 4 forwards, 4 backwards
        assert {step["kind"] for step in rank} == {"forward", "backward"}
        assert all(855 <= step["frequency_mhz"] <= 1410 for step in rank)
    # 1F1B on the last stage alternates forward and backward.
    assert [s["kind"][0] for s in plan[7]] == list("fbfbfbfb")
    slow = frontier.index_for_deadline(frontier.points[0].time_s)
    assert slow is not None
    assert frontier.index_for_deadline(0.001) is None


def test_planning_releases_the_gil(gpt3_profile):
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    start = time.monotonic()
    perseus.plan(gpt3_profile, stages=8, microbatches=32, blocking_power_w=83.64)
    end = time.monotonic()
    stop.set()
    thread.join()
    # The other thread kept running while the planner worked.
    assert sum(1 for t in ticks if start < t < end) > 5


def test_emulate_matches_the_cli(gpt3_profile, perseus_bin):
    frontier = perseus.plan(gpt3_profile, stages=8, microbatches=12, blocking_power_w=83.64)
    rows = perseus.emulate(frontier, pipelines=4, slowdowns=[1.0, 1.2],
                           methods=["all-max", "perseus"])
    assert [(r["slowdown"], r["method"]) for r in rows] == [
        (1.0, "all-max"), (1.0, "perseus"), (1.2, "all-max"), (1.2, "perseus")]
    assert rows[3]["saving_pct"] > rows[1]["saving_pct"] > 0  # more bloat with a straggler
    cli = json.loads(subprocess.run(
        [perseus_bin, "emulate", "--profile", gpt3_profile, "--stages", "8", "--microbatches",
         "12", "--blocking-power", "83.64", "--pipelines", "4", "--straggler-slowdown", "1.2",
         "--methods", "all-max", "perseus", "--json"],
        check=True, capture_output=True, text=True).stdout)
    row = cli["rows"][0]
    assert row["slowdown"] == 1.2
    assert row["perseus"]["saving_pct"] == rows[3]["saving_pct"]
    assert row["perseus"]["energy"] == rows[3]["energy_j"]
    assert row["all-max"]["time"] == rows[2]["time_s"]


def test_bad_emulation_method(gpt3_profile):
    frontier = perseus.plan(gpt3_profile, stages=8, microbatches=4)
    with pytest.raises(perseus.InvalidInputError):
        perseus.emulate(frontier, methods=["magic"])
