import pytest

import perseus
from http_helpers import call, metric, serve, wait_for_reports


def test_client_follows_the_coordinator(perseus_bin, gpt3_profile, tmp_path):
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        job = call(base, "POST", "/v1/jobs", {"name": "py", "stages": 8, "microbatches": 4,
                                               "dp": 2, "blocking_power_w": 83.64})["job_id"]
        clocks = list(range(1410, 854, -15))
        for rank in range(16):
            call(base, "POST", f"/v1/jobs/{job}/ranks",
                  {"rank": rank, "pp_rank": rank % 8, "dp_rank": rank // 8, "tp_rank": 0,
                   "frequencies_mhz": clocks})
        with open(gpt3_profile, "rb") as f:
            call(base, "PUT", f"/v1/jobs/{job}/profile", f.read(), "text/csv")
        sim = perseus.SimBackend(gpt3_profile)
        controller = perseus.FrequencyController(sim[3], reset_on_signals=False)
        client = perseus.Client(base, job_id=job, rank=11, pp_rank=3, dp_rank=1,
                                frequencies_mhz=clocks, controller=controller)
        assert client.wait_for_plan(0, 60)
        plan = call(base, "GET", f"/v1/jobs/{job}/plan?rank=11")
        for step in plan["instructions"]:
            assert client.frequency_for(step["kind"], step["microbatch"]) == step["frequency_mhz"]
        first = plan["instructions"][0]
        assert client.apply(first["kind"], first["microbatch"]) == first["frequency_mhz"]
        controller.flush()
        assert sim[3].current_sm_clock() == first["frequency_mhz"]
        call(base, "POST", f"/v1/jobs/{job}/stragglers", {"pipeline": 0, "slowdown": 1.25})
        client.end_iteration(0, 1.0, 100.0)
        assert client.wait_for_plan(1, 60)
        assert client.plan_version == 2
        wait_for_reports(base, job, 1)


def test_client_reports_plan_mismatches(perseus_bin, tmp_path):
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        job = call(base, "POST", "/v1/jobs", {"name": "py", "stages": 2, "microbatches": 2,
                                               "blocking_power_w": 83.64})["job_id"]
        assert metric(base, "perseus_plan_mismatches_total", job) == 0
        client = perseus.Client(base, job_id=job, rank=1, pp_rank=1,
                                frequencies_mhz=[1410, 1005], poll_interval_s=60)
        client.end_iteration(0, 1.0, 100.0, mismatches=3)
        client.end_iteration(1, 1.0, 100.0)  # none
        client.end_iteration(2, 1.0, 100.0, 2)
        with pytest.raises(perseus.InvalidInputError, match="mismatches"):
            client.end_iteration(3, 1.0, 100.0, mismatches=-1)
        report = wait_for_reports(base, job, 3)
        assert metric(base, "perseus_plan_mismatches_total", job) == 5
        assert metric(base, "perseus_iterations_with_mismatches_total", job) == 2
        assert (report["plan_mismatches"], report["iterations_with_mismatches"]) == (5, 2)


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "abc\n", "a\x00b", "a\x7f"])
def test_client_refuses_a_token_with_control_characters(token):
    # Sent in the Authorization header, CR/LF would add headers of the token's choosing.
    with pytest.raises(ValueError, match="control character"):
        perseus.Client("http://127.0.0.1:1", job_id=1, rank=0, pp_rank=0,
                       frequencies_mhz=[1410], token=token)
