import json
import os
import pathlib
import subprocess
import threading
import time

import pytest

import perseus
from http_helpers import call, serve


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


def test_the_energy_scope_is_named(gpt3_profile, perseus_bin):
    # Python's frontier is one pipeline's, as the coordinator's; the CLI's figures the job's.
    frontier = perseus.plan(gpt3_profile, stages=8, microbatches=4, dp=4, blocking_power_w=83.64)
    assert frontier.energy_scope == "pipeline"
    assert frontier.pipelines == 4
    cli = json.loads(subprocess.run(
        [perseus_bin, "plan", "--profile", gpt3_profile, "--stages", "8", "--microbatches", "4",
         "--dp", "4", "--blocking-power", "83.64", "--json"],
        check=True, capture_output=True, text=True).stdout)
    assert cli["energy_scope"] == "job"
    assert abs(cli["all_max"]["energy"] - 4 * frontier.all_max[1]) < 1e-6 * cli["all_max"]["energy"]


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


DUALPIPEV = (pathlib.Path(os.environ.get("PERSEUS_DATA_DIR", "data")) / "schedules" /
             "torch-2.13" / "DualPipeV.compute_only.csv")


def test_schedule_csv_text_names_overlapped_computations(gpt3_profile):
    text = DUALPIPEV.read_text()
    frontier = perseus.plan(gpt3_profile, schedule_csv=text, blocking_power_w=83.64)
    from_file = perseus.plan(gpt3_profile, schedule_file=str(DUALPIPEV), blocking_power_w=83.64)
    assert [(p.time_s, p.energy_j) for p in frontier.points] == [
        (p.time_s, p.energy_j) for p in from_file.points]
    assert any("overlapped F+B of DualPipeV" in note for note in frontier.notes)
    plan = frontier.plan(frontier.t_min_index)
    assert len(plan) == 4
    overlaps = [s for rank in plan for s in rank if s["kind"] == "overlap_f_b"]
    assert len(overlaps) == 25
    assert all(set(s["backward"]) == {"kind", "stage", "microbatch"} for s in overlaps)
    assert all(s["backward"]["kind"] in ("backward", "backward_input") for s in overlaps)
    assert all("backward" not in s for rank in plan for s in rank if s["kind"] != "overlap_f_b")
    # Rank 0 of torch's DualPipeV: ... 7F3 (0F7;7B3)OVERLAP_F_B (7F4;0B0)OVERLAP_F_B 7B4 ...
    first = next(i for i, s in enumerate(plan[0]) if s["kind"] == "overlap_f_b")
    assert (plan[0][first - 1]["kind"], plan[0][first - 1]["stage"]) == ("forward", 7)
    step = plan[0][first]
    assert (step["stage"], step["microbatch"]) == (0, 7)
    assert step["backward"] == {"kind": "backward", "stage": 7, "microbatch": 3}
    with pytest.raises(perseus.InvalidInputError, match=r"schedule:1: column 2"):
        perseus.plan(gpt3_profile, schedule_csv="0F0,(0F1)OVERLAP_F_B\n")
    with pytest.raises(perseus.InvalidInputError, match="the schedule has 4 ranks but stages is 8"):
        perseus.plan(gpt3_profile, schedule_csv=text, stages=8)


def test_client_frequency_for_overlap(perseus_bin, gpt3_profile, tmp_path):
    # Without a plan: the highest clock, for overlap_f_b as for any kind.
    offline = perseus.Client("http://127.0.0.1:1", job_id=1, rank=0, pp_rank=0,
                             frequencies_mhz=[1005, 1410])
    assert offline.frequency_for("overlap_f_b", 7, 0) == 1410
    with pytest.raises(perseus.InvalidInputError, match="overlap_f_b"):
        offline.frequency_for("sideways", 0)

    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        job = call(base, "POST", "/v1/jobs", {"name": "dualpipev",
                                               "schedule_csv": DUALPIPEV.read_text(),
                                               "blocking_power_w": 83.64})["job_id"]
        clocks = list(range(1410, 854, -15))
        for rank in range(4):
            call(base, "POST", f"/v1/jobs/{job}/ranks",
                  {"rank": rank, "pp_rank": rank, "dp_rank": 0, "frequencies_mhz": clocks})
        with open(gpt3_profile, "rb") as f:
            call(base, "PUT", f"/v1/jobs/{job}/profile", f.read(), "text/csv")
        client = perseus.Client(base, job_id=job, rank=0, pp_rank=0, frequencies_mhz=clocks)
        assert client.wait_for_plan(0, 60)
        served = call(base, "GET", f"/v1/jobs/{job}/plan?rank=0")["instructions"]
        assert client.instructions() == served
        overlaps = [s for s in served if s["kind"] == "overlap_f_b"]
        assert len(overlaps) == 5
        for s in overlaps:
            assert client.frequency_for("overlap_f_b", s["microbatch"], s["stage"]) == \
                s["frequency_mhz"]
            b = s["backward"]
            assert client.frequency_for(b["kind"], b["microbatch"], b["stage"]) == \
                s["frequency_mhz"]
        assert client.frequency_for("overlap_f_b", 99) == 1410


def test_blocking_power_is_taken_from_beside_the_profile_and_warned_about(gpt3_profile, tmp_path):
    # No blocking power and none measured: planned with 0 W, and Python warns.
    with pytest.warns(UserWarning, match="no blocking power"):
        bare = perseus.plan(gpt3_profile, stages=8, microbatches=12)
    assert bare.blocking_power_w == 0.0
    assert bare.blocking_power_source == "none given"
    assert any("no blocking power" in w for w in bare.warnings)
    # What `perseus profile --out` writes beside a profile is used, and said.
    profile = tmp_path / "p.csv"
    profile.write_text(pathlib.Path(gpt3_profile).read_text())
    (tmp_path / "p.csv.meta.json").write_text(json.dumps({"blocking_power_w": 83.64}))
    measured = perseus.plan(str(profile), stages=8, microbatches=12)
    assert measured.blocking_power_w == 83.64
    assert measured.blocking_power_source == f"measured by perseus profile ({profile}.meta.json)"
    assert measured.warnings == []
    given = perseus.plan(str(profile), stages=8, microbatches=12, blocking_power_w=70.0)
    assert (given.blocking_power_w, given.blocking_power_source) == (70.0, "given")
