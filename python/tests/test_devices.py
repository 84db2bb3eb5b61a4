"""perseus.devices: the NVML GPU a CUDA device is, on the stand-in NVML's GPUs."""

import sys
import types
from typing import Iterator, Optional

import pytest

import perseus
from perseus.devices import normalize_pci_bus_id, nvml_index_for_cuda_device
from conftest import BIN_DIR

FAKE_NVML = BIN_DIR.resolve().parent / "fake_nvml" / "libnvidia-ml.so.1"


def uuid(i: int) -> str:
    return "GPU-fake0000-0000-0000-0000-%012d" % i


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[perseus.NvmlBackend]:
    """Four GPUs from the stand-in libnvidia-ml.so.1."""
    monkeypatch.setenv("PERSEUS_NVML_LIBRARY", str(FAKE_NVML))
    monkeypatch.setenv("FAKE_NVML_GPUS", "4")
    monkeypatch.delenv("FAKE_NVML_LOG", raising=False)
    yield perseus.NvmlBackend()


@pytest.fixture(autouse=True)
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CUDA torch unless a test fakes one (torch here, if present, is CPU-only)."""
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError


def fake_torch(monkeypatch: pytest.MonkeyPatch, devices: "list[tuple[str, int]]",
               with_pci: bool = True) -> None:
    """A torch whose CUDA devices are (uuid without "GPU-", PCI bus) pairs."""
    def props(i: int) -> types.SimpleNamespace:
        ns = types.SimpleNamespace(uuid=devices[i][0])
        if with_pci:
            ns.pci_bus_id, ns.pci_device_id, ns.pci_domain_id = devices[i][1], 0, 0
        return ns

    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: len(devices),
                                 get_device_properties=props)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))


def index(cuda: int, backend: perseus.NvmlBackend, env: Optional[dict] = None, **kw: str) -> int:
    return nvml_index_for_cuda_device(cuda, backend=backend, environ=env or {}, **kw)


def test_the_stand_in_gpus_have_uuids_and_pci_bus_ids(backend):
    assert [backend[i].uuid for i in range(4)] == [uuid(i) for i in range(4)]
    assert [backend[i].pci_bus_id for i in range(4)] == [
        "00000000:10:00.0", "00000000:11:00.0", "00000000:12:00.0", "00000000:13:00.0"]


def test_unset_visible_devices_is_the_identity(backend):
    assert [index(i, backend) for i in range(4)] == [0, 1, 2, 3]
    with pytest.raises(perseus.InvalidInputError, match="CUDA_VISIBLE_DEVICES is unset"):
        index(4, backend)


def test_index_form(backend):
    env = {"CUDA_VISIBLE_DEVICES": "2,0"}
    assert index(0, backend, env) == 2
    assert index(1, backend, env) == 0
    with pytest.raises(perseus.InvalidInputError) as error:
        index(2, backend, env)
    assert "CUDA_VISIBLE_DEVICES='2,0'" in str(error.value) and "2 GPU(s)" in str(error.value)
    with pytest.raises(perseus.InvalidInputError, match="CUDA_VISIBLE_DEVICES='7'.*GPU 7"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": "7"})
    assert index(0, backend, {"CUDA_VISIBLE_DEVICES": " 3 , 1"}) == 3
    assert index(1, backend, {"CUDA_VISIBLE_DEVICES": "3,1,-1,0"}) == 1
    with pytest.raises(perseus.InvalidInputError, match="not visible"):
        index(2, backend, {"CUDA_VISIBLE_DEVICES": "3,1,-1,0"})  # CUDA stops at -1
    with pytest.raises(perseus.InvalidInputError, match="not visible: CUDA_VISIBLE_DEVICES=''"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": ""})
    with pytest.raises(perseus.InvalidInputError, match="twice"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": "1,1"})


def test_uuid_form_and_prefixes(backend):
    env = {"CUDA_VISIBLE_DEVICES": f"{uuid(3)},{uuid(1)}"}
    assert index(0, backend, env) == 3 and index(1, backend, env) == 1
    assert index(0, backend, {"CUDA_VISIBLE_DEVICES": uuid(2).upper()}) == 2
    # A prefix, as CUDA accepts, must name one GPU (the stand-in's differ in the last digit).
    with pytest.raises(perseus.InvalidInputError, match="more than one"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": uuid(2)[:-1]})
    with pytest.raises(perseus.InvalidInputError, match="names no GPU"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": "GPU-0123"})
    with pytest.raises(perseus.InvalidInputError, match="MIG"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": "MIG-abc"})
    with pytest.raises(perseus.InvalidInputError, match="neither a GPU index nor"):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": "gpu0"})


def test_explicit_uuid_and_pci_bus_id(backend):
    env = {"CUDA_VISIBLE_DEVICES": "2,0"}
    assert index(0, backend, env, cuda_uuid=uuid(2)) == 2
    assert index(1, backend, env, cuda_uuid=uuid(0)[4:]) == 0  # torch's form: no "GPU-"
    assert index(0, backend, env, cuda_pci_bus_id="0000:12:00.0") == 2  # CUDA's form
    assert index(0, backend, env, cuda_pci_bus_id="12:00.0") == 2
    assert index(0, backend, env, cuda_uuid=uuid(2), cuda_pci_bus_id="00000000:12:00.0") == 2
    # Index form in CUDA's default order (fastest first) may legitimately differ: the UUID wins.
    assert index(0, backend, env, cuda_uuid=uuid(1)) == 1
    with pytest.raises(perseus.InvalidInputError) as error:
        index(0, backend, {"CUDA_VISIBLE_DEVICES": "2,0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
              cuda_uuid=uuid(1))
    assert "CUDA_VISIBLE_DEVICES='2,0'" in str(error.value)
    with pytest.raises(perseus.InvalidInputError, match="CUDA_VISIBLE_DEVICES="):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": f"{uuid(2)}"}, cuda_uuid=uuid(3))
    with pytest.raises(perseus.InvalidInputError, match="UUID GPU-nope.*CUDA_VISIBLE_DEVICES"):
        index(0, backend, env, cuda_uuid="nope")
    with pytest.raises(perseus.InvalidInputError, match="00000000:20:00.0"):
        index(0, backend, env, cuda_pci_bus_id="0000:20:00.0")
    with pytest.raises(perseus.InvalidInputError, match="PCI bus id"):
        index(0, backend, env, cuda_uuid=uuid(2), cuda_pci_bus_id="0000:13:00.0")
    with pytest.raises(perseus.InvalidInputError, match="not domain:bus"):
        index(0, backend, env, cuda_pci_bus_id="pci0")
    with pytest.raises(perseus.InvalidInputError, match="negative"):
        index(-1, backend, env)


def test_reads_the_identity_from_torch_when_it_has_cuda(backend, monkeypatch):
    fake_torch(monkeypatch, [(uuid(3)[4:], 0x13), (uuid(1)[4:], 0x11)])
    env = {"CUDA_VISIBLE_DEVICES": "3,1"}
    assert index(0, backend, env) == 3 and index(1, backend, env) == 1
    with pytest.raises(perseus.InvalidInputError, match="torch sees 2"):
        index(2, backend, env)
    # torch's UUID and bus id disagree with CUDA_VISIBLE_DEVICES in UUID form: refused.
    with pytest.raises(perseus.InvalidInputError, match="CUDA_VISIBLE_DEVICES="):
        index(0, backend, {"CUDA_VISIBLE_DEVICES": f"{uuid(0)},{uuid(1)}"})
    fake_torch(monkeypatch, [(uuid(2)[4:], 0)], with_pci=False)  # an older torch: UUID only
    assert index(0, backend, {}) == 2


def test_normalize_pci_bus_id():
    assert normalize_pci_bus_id("0000:07:00.0") == "00000000:07:00.0"
    assert normalize_pci_bus_id("00000001:a1:1f.3") == "00000001:A1:1F.3"
