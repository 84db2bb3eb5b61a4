"""The coordinator's OpenAPI description (GET /v1/openapi.json) against the running server.

schemathesis (its command line) generates requests from the description, valid and invalid,
and checks every reply: no 5xx, and every reply's body matches the description's schema for
its status. Job 1 is a planned job, so the operations on a job reach more than "no such job".
"""

import json
import pathlib
import subprocess
import sys
import time

from http_helpers import call, serve

OPENAPI = pathlib.Path(__file__).resolve().parents[2] / "src" / "server" / "openapi.json"


def ready_job(base: str, profile: str) -> int:
    """Job 1: 8 stages x 2 pipelines, every rank registered, the profile given, planned."""
    job = call(base, "POST", "/v1/jobs", {"name": "openapi", "stages": 8, "microbatches": 4,
                                          "dp": 2, "blocking_power_w": 83.64})["job_id"]
    clocks = list(range(1410, 854, -15))
    for rank in range(16):
        call(base, "POST", f"/v1/jobs/{job}/ranks",
             {"rank": rank, "pp_rank": rank % 8, "dp_rank": rank // 8, "frequencies_mhz": clocks})
    with open(profile, "rb") as f:
        call(base, "PUT", f"/v1/jobs/{job}/profile", f.read(), "text/csv")
    deadline = time.monotonic() + 120
    while call(base, "GET", f"/v1/jobs/{job}")["state"] != "ready":
        assert time.monotonic() < deadline, "job 1 did not reach ready"
        time.sleep(0.1)
    return int(job)


def test_the_server_serves_the_description_in_the_repository(perseus_bin, tmp_path):
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        served = call(base, "GET", "/v1/openapi.json")
    assert served == json.loads(OPENAPI.read_text())
    assert served["openapi"].startswith("3.")
    routes = {(method.upper(), path) for path, ops in served["paths"].items()
              for method in ops if method != "parameters"}
    # Every route of include/perseus/server/server.h, GET /v1/jobs and DELETE /v1/jobs/{id}.
    assert routes == {
        ("GET", "/v1/openapi.json"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{id}"), ("DELETE", "/v1/jobs/{id}"), ("POST", "/v1/jobs/{id}/ranks"),
        ("PUT", "/v1/jobs/{id}/profile"), ("GET", "/v1/jobs/{id}/frontier"),
        ("GET", "/v1/jobs/{id}/plan"), ("POST", "/v1/jobs/{id}/stragglers"),
        ("DELETE", "/v1/jobs/{id}/stragglers/{pipeline}"), ("POST", "/v1/jobs/{id}/iterations"),
        ("GET", "/v1/jobs/{id}/report")}


def test_schemathesis_finds_no_server_error_and_no_schema_violation(perseus_bin, gpt3_profile,
                                                                     tmp_path):
    with serve(perseus_bin, tmp_path / "db.sqlite") as base:
        assert ready_job(base, gpt3_profile) == 1
        described = call(base, "GET", "/v1/openapi.json")
        # Operations described ahead of the server (x-perseus-pending): left out until it has them.
        pending = [op["operationId"] for ops in described["paths"].values()
                   for op in ops.values() if isinstance(op, dict) and op.get("x-perseus-pending")]
        command = [sys.executable, "-m", "schemathesis.cli", "run", base + "/v1/openapi.json",
                   "--checks", "not_a_server_error,response_schema_conformance",
                   "--max-examples", "10", "--seed", "1", "--workers", "1",
                   "--request-timeout", "30", "--no-color"]
        for op in pending:
            command += ["--exclude-operation-id", op]
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
