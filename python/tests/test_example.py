"""The end-to-end example at a small size: real processes, real training, a
real coordinator, simulated GPUs."""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "torch_pipeline.py"


def test_torch_pipeline_example_trains_and_saves_energy():
    run = subprocess.run([sys.executable, str(EXAMPLE), "--stages", "2", "--microbatches", "4",
                          "--iterations", "3", "--perseus", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("stages", "microbatches", "iterations", "loss_first", "loss_last", "baseline",
                "perseus", "saving_pct", "slowdown_pct"):
        assert key in result
    assert result["stages"] == 2 and result["iterations"] == 3
    assert result["loss_last"] < result["loss_first"]
    assert result["saving_pct"] > 0
    # slowdown_pct is wall-clock and the test machine is shared: reported, not asserted.
    print("slowdown_pct", result["slowdown_pct"])
