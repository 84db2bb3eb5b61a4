import os
import pathlib

import pytest

import perseus

FAKE_NVML = pathlib.Path(os.environ.get("PERSEUS_BIN_DIR", "build/bin")).parent / "fake_nvml"


def test_missing_profile_is_not_found():
    with pytest.raises(perseus.NotFoundError) as error:
        perseus.plan("/nonexistent/profile.csv", stages=2, microbatches=2)
    assert isinstance(error.value, LookupError)
    assert isinstance(error.value, perseus.PerseusError)
    assert "/nonexistent/profile.csv" in str(error.value)


def test_bad_input_is_a_value_error(gpt3_profile):
    with pytest.raises(ValueError) as error:
        perseus.plan(gpt3_profile, stages=3, microbatches=4)
    assert isinstance(error.value, perseus.InvalidInputError)
    assert "8 stages" in str(error.value)
    with pytest.raises(perseus.InvalidInputError):
        perseus.FrequencySweep([1410], ["sideways"])


def test_missing_nvml_is_unavailable(monkeypatch):
    monkeypatch.setenv("PERSEUS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
    with pytest.raises(perseus.UnavailableError) as error:
        perseus.NvmlBackend()
    assert isinstance(error.value, ConnectionError)
    assert "libnvidia-ml" in str(error.value)


def test_nvml_permission_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSEUS_NVML_LIBRARY", str(FAKE_NVML / "libnvidia-ml.so.1"))
    monkeypatch.setenv("FAKE_NVML_FAIL", "nvmlDeviceSetGpuLockedClocks=4")
    monkeypatch.setenv("FAKE_NVML_LOG", str(tmp_path / "nvml.log"))
    backend = perseus.NvmlBackend()
    assert len(backend) == 2
    assert backend[0].name == "Fake NVIDIA A100-SXM4-80GB"
    with pytest.raises(PermissionError) as error:
        backend[0].lock_sm_clock(1200)
    assert isinstance(error.value, perseus.PermissionDeniedError)
    assert "perseus gpud" in str(error.value)
