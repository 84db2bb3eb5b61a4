"""bench/gpu_readonly.py: runs without a GPU (reporting that), measures the hook's CPU cost, and
changes nothing on a GPU: its source names no NVML setter, and on the stand-in libnvidia-ml it
calls none."""

import json
import os
import pathlib
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_readonly.py"
BIN_DIR = pathlib.Path(os.environ.get("PERSEUS_BIN_DIR", "build/bin")).resolve()
FAKE_NVML_DIR = BIN_DIR.parent / "fake_nvml"
SETTERS = ("nvmlDeviceSet", "nvmlDeviceReset", "LockGpuClocks", "SetApplicationsClocks")


def run_script(env: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("FAKE_NVML_") and k != "PERSEUS_NVML_LIBRARY"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "1", "--json", "--hook-steps", "200",
         "--perseus", str(BIN_DIR / "perseus")],
        capture_output=True, text=True, timeout=240, check=False, env={**base, **(env or {})})
    assert done.returncode == 0, done.stderr + done.stdout
    report: Dict[str, Any] = json.loads(done.stdout)
    return report


def check_hook_cost(report: Dict[str, Any]) -> None:
    hook = report["hook_cost"]
    assert "error" not in hook, hook
    for name in ("bare", "training_loop"):
        loop = hook[name]
        us = loop["us_per_instruction"]
        assert us["count"] == loop["instructions"] > 0
        assert 0 < us["median"] <= us["p99"]
        assert loop["clock_requests_recorded"] == loop["instructions"]  # a new clock each time
        assert loop["mismatches"] == 0 and loop["errors"] == 0
    if not report["host"]["cuda"]:
        assert hook["training_loop"]["device"] == "cpu"
        assert "CPU" in hook["training_loop"]["note"]


def test_source_names_no_nvml_setter() -> None:
    text = SCRIPT.read_text()
    for name in SETTERS:
        assert name not in text, name


def test_without_a_gpu_reports_it_and_measures_the_hook() -> None:
    report = run_script()
    assert report["errors"] == []
    nvml = report["nvml"]
    if nvml["available"]:  # a machine with a driver: the measurement itself
        assert report["gpu_info"]["ok"]
        assert nvml["energy_counter"]["distinct_values"] >= 1
    else:
        assert report["gpu_available"] is False
        assert "no NVIDIA driver" in nvml["reason"] or "no GPU" in nvml["reason"]
        assert not report["gpu_info"]["ok"]
        assert "libnvidia-ml" in report["gpu_info"]["error"]
    check_hook_cost(report)


@pytest.mark.skipif(not (FAKE_NVML_DIR / "libnvidia-ml.so.1").exists(),
                    reason="no stand-in libnvidia-ml.so.1 in the build")
def test_on_the_stand_in_nvml_it_only_reads(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "nvml.log"
    report = run_script({"LD_LIBRARY_PATH": str(FAKE_NVML_DIR), "FAKE_NVML_LOG": str(log)})
    assert report["errors"] == []
    assert report["gpu_info"]["ok"]
    assert report["gpu_info"]["json"]["gpus"][0]["name"].startswith("Fake")
    nvml = report["nvml"]
    assert nvml["available"] and nvml["gpu"] == 0 and nvml["device_count"] == 2
    counter = nvml["energy_counter"]
    assert counter["distinct_values"] > 2 and counter["min_increment_mj"] >= 1
    # The stand-in draws 300 W at its 1410 MHz default clock.
    assert counter["counter_power_w"] == pytest.approx(300, rel=0.05)
    assert counter["power_usage_w"]["mean"] == pytest.approx(300, rel=0.01)
    assert counter["sm_clock_mhz"]["median"] == 1410
    calls = log.read_text().splitlines()
    assert any("nvmlInit_v2" in line for line in calls)
    changes = [line for line in calls if "Set" in line or "Reset" in line]
    assert changes == []
