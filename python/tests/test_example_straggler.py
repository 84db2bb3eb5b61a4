"""The end-to-end example with --dp 2 --straggler: real torch.distributed.pipelining schedules in
real processes, a real coordinator detecting a straggler from wall-clock iteration times, simulated
GPUs. Timing-sensitive: CTest runs this file alone (RUN_SERIAL in python/CMakeLists.txt)."""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "torch_pipeline.py"


# --dp 2 --straggler: pipeline 1 runs 20% slower for N iterations, then normally. No straggler
# request is made: the coordinator detects it from the iteration reports (K = 3 by default),
# moves pipeline 0 to a slower, cheaper plan, and back once pipeline 1 recovered.
def test_torch_pipeline_example_detects_and_recovers_from_a_straggler():
    run = subprocess.run([sys.executable, str(EXAMPLE), "--schedule", "1F1B", "--stages", "2",
                          "--microbatches", "4", "--dp", "2", "--straggler",
                          "--straggler-iterations", "8", "--time-scale", "0.5", "--perseus",
                          "--json", "--timeout", "300"],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["iterations"] == 16
    assert result["order_checked"] is True, result.get("order_problem")
    assert result["mismatches"] == 0
    # Per iteration: the plan versions and the compute times the coordinator judged.
    seen = [(x["plan_versions"], [round(t, 4) for t in x["compute_time_s"]])
            for x in result["straggler"]["per_iteration"]]
    # Three slow iterations to declare it, and the plan refresh at a step boundary.
    assert result["straggler_detected_after_iterations"] is not None, seen
    assert result["straggler_detected_after_iterations"] <= 5, seen
    # Recovery: the mean of pipeline 1's last K = 3 times within (1 + 0.05 / 2) x pipeline 0's
    # time at declaration. At time scale 0.25 torch's own milliseconds and the shared cores'
    # noise were ~10% of an iteration; at 0.5 they weigh half. In CI one run beside the
    # torchtitan tests did not recover in 8 normal iterations under the old rule (K in a row
    # within the margin): the rule is a mean now and this file runs alone.
    assert result["straggler_recovered"] is True, seen
    versions = result["plan_versions_by_pipeline"]
    assert len(versions) == 2 and all(len(v) == 16 for v in versions)
    # The straggler itself keeps its fastest plan; pipeline 0 went through two new versions.
    assert versions[0][-1] >= versions[0][0] + 2
    assert result["straggler"]["detected_total"] == 1
    assert result["straggler"]["recovered_total"] == 1
    assert result["loss_last"] < result["loss_first"]
    print("straggler: detected after", result["straggler_detected_after_iterations"],
          "recovered after", result["straggler_recovered_after_iterations"],
          "run_saving_pct", result["run_saving_pct"])
