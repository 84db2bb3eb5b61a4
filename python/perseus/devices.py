"""Which NVML GPU a CUDA device is.

A rank picks a CUDA device by index (``torch.cuda.set_device(local_rank)``);
Perseus sets clocks on NVML devices. The two indices differ whenever
CUDA_VISIBLE_DEVICES renumbers the GPUs a process sees ("2,0": CUDA device 0
is the machine's GPU 2), and CUDA's default order (fastest first) may differ
from NVML's (PCI bus order). The GPU's UUID or PCI bus id names it the same
way on both sides, so those are used whenever they are known.

    backend = perseus.open_backend()
    gpu = backend[perseus.devices.nvml_index_for_cuda_device(local_rank, backend=backend)]
"""

import os
import re
from typing import List, Mapping, Optional, Protocol, Tuple

from ._perseus import InvalidInputError

__all__ = ["nvml_index_for_cuda_device", "normalize_pci_bus_id"]

_ENV = "CUDA_VISIBLE_DEVICES"


class _Gpu(Protocol):
    @property
    def uuid(self) -> str: ...

    @property
    def pci_bus_id(self) -> str: ...


class _Backend(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> _Gpu: ...


_PCI = re.compile(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.([0-7]))?$")


def normalize_pci_bus_id(bus_id: str) -> str:
    """"0000:07:00.0", "00000000:07:00.0" (NVML) or "07:00.0" as "00000000:07:00.0"."""
    match = _PCI.match(bus_id.strip())
    if match is None:
        raise InvalidInputError(
            f"PCI bus id {bus_id!r} is not domain:bus:device.function (e.g. 0000:07:00.0)")
    domain, bus, device, function = match.groups()
    return "%08X:%02X:%02X.%s" % (int(domain or "0", 16), int(bus, 16), int(device, 16),
                                  function or "0")


def _normalize_uuid(uuid: str) -> str:
    """A UUID as NVML writes it: "GPU-" and lower-case hex (torch omits the prefix)."""
    text = uuid.strip().lower()
    if text.startswith("gpu-"):
        text = text[4:]
    return "GPU-" + text


def _torch_identity(cuda_index: int) -> Tuple[Optional[str], Optional[str]]:
    """(uuid, pci bus id) of CUDA device `cuda_index` from torch, where torch has CUDA."""
    try:
        import torch
    except ImportError:
        return None, None
    if not torch.cuda.is_available():
        return None, None
    count = torch.cuda.device_count()
    if not 0 <= cuda_index < count:
        raise InvalidInputError(
            f"CUDA device {cuda_index} does not exist: torch sees {count} "
            f"({_ENV}={os.environ.get(_ENV)!r})")
    props = torch.cuda.get_device_properties(cuda_index)
    uuid_value = getattr(props, "uuid", None)
    uuid = str(uuid_value) if uuid_value is not None else None
    bus = getattr(props, "pci_bus_id", None)
    device = getattr(props, "pci_device_id", None)
    domain = getattr(props, "pci_domain_id", None)
    bus_id = None
    if isinstance(bus, int) and isinstance(device, int):
        bus_id = "%08X:%02X:%02X.0" % (domain if isinstance(domain, int) else 0, bus, device)
    return uuid, bus_id


def _visible(environ: Mapping[str, str], backend: _Backend) -> Optional[List[int]]:
    """NVML indices CUDA_VISIBLE_DEVICES lists, in CUDA order; None when it is unset."""
    value = environ.get(_ENV)
    if value is None:
        return None
    if not value.strip():
        return []
    uuids = [backend[i].uuid.lower() for i in range(len(backend))]
    out: List[int] = []
    for entry in (e.strip() for e in value.split(",")):
        if re.fullmatch(r"-?\d+", entry):
            index = int(entry)
            if index < 0:
                break  # CUDA stops at a negative index: the rest are invisible
            if index >= len(backend):
                raise InvalidInputError(
                    f"{_ENV}={value!r} lists GPU {index}, but NVML sees {len(backend)} GPU(s)")
            out.append(index)
        elif entry.lower().startswith("gpu-"):
            matches = [i for i, u in enumerate(uuids) if u.startswith(entry.lower())]
            if len(matches) != 1:
                raise InvalidInputError(
                    f"{_ENV}={value!r}: {entry!r} names "
                    f"{'no' if not matches else 'more than one'} GPU NVML sees "
                    f"({', '.join(backend[i].uuid for i in range(len(backend)))})")
            out.append(matches[0])
        elif entry.lower().startswith("mig-"):
            raise InvalidInputError(
                f"{_ENV}={value!r}: {entry!r} is a MIG instance; Perseus sets whole-GPU clocks, "
                "so name the GPU (GPU-... or its index)")
        else:
            raise InvalidInputError(
                f"{_ENV}={value!r}: {entry!r} is neither a GPU index nor a GPU UUID (GPU-...)")
    if len(set(out)) != len(out):
        raise InvalidInputError(f"{_ENV}={value!r} lists a GPU twice")
    return out


def nvml_index_for_cuda_device(cuda_index: int, *, backend: _Backend,
                               environ: Optional[Mapping[str, str]] = None,
                               cuda_uuid: Optional[str] = None,
                               cuda_pci_bus_id: Optional[str] = None) -> int:
    """The index in `backend` (NVML's numbering) of CUDA device `cuda_index`.

    The GPU is identified, in this order, by `cuda_uuid` or `cuda_pci_bus_id`
    when given; else by torch's properties of the device (UUID, PCI bus id)
    when torch has CUDA; else by CUDA_VISIBLE_DEVICES from `environ`
    (default os.environ): index form ("2,0"), UUID form ("GPU-..." or a unique
    prefix of one) or unset (CUDA device i is GPU i). The index form is taken
    in PCI bus order (NVML's, and CUDA's with CUDA_DEVICE_ORDER=PCI_BUS_ID).
    When both a UUID/bus id and CUDA_VISIBLE_DEVICES name the GPU and they
    disagree (UUID form, or CUDA_DEVICE_ORDER=PCI_BUS_ID), or any of them names
    no GPU of `backend`, raises InvalidInputError naming CUDA_VISIBLE_DEVICES
    and its value.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    value = env.get(_ENV)
    if cuda_index < 0:
        raise InvalidInputError(f"CUDA device index {cuda_index} is negative ({_ENV}={value!r})")
    if cuda_uuid is None and cuda_pci_bus_id is None:
        cuda_uuid, cuda_pci_bus_id = _torch_identity(cuda_index)

    by_identity: Optional[int] = None
    if cuda_uuid is not None:
        want = _normalize_uuid(cuda_uuid).lower()
        found = [i for i in range(len(backend)) if backend[i].uuid.lower() == want]
        if not found:
            raise InvalidInputError(
                f"CUDA device {cuda_index} has UUID {_normalize_uuid(cuda_uuid)}, which no GPU "
                f"NVML sees has ({_ENV}={value!r})")
        by_identity = found[0]
    if cuda_pci_bus_id is not None:
        want = normalize_pci_bus_id(cuda_pci_bus_id)
        found = [i for i in range(len(backend))
                 if backend[i].pci_bus_id and normalize_pci_bus_id(backend[i].pci_bus_id) == want]
        if not found:
            raise InvalidInputError(
                f"CUDA device {cuda_index} is at PCI bus id {want}, where NVML sees no GPU "
                f"({_ENV}={value!r})")
        if by_identity is not None and by_identity != found[0]:
            raise InvalidInputError(
                f"CUDA device {cuda_index}: UUID {cuda_uuid} is NVML GPU {by_identity} but PCI "
                f"bus id {want} is NVML GPU {found[0]} ({_ENV}={value!r})")
        by_identity = found[0]

    visible = _visible(env, backend)
    by_env: Optional[int] = None
    if visible is None:
        if by_identity is None and cuda_index >= len(backend):
            raise InvalidInputError(
                f"CUDA device {cuda_index} does not exist: NVML sees {len(backend)} GPU(s) and "
                f"{_ENV} is unset")
        by_env = cuda_index if cuda_index < len(backend) else None
    else:
        if cuda_index >= len(visible):
            raise InvalidInputError(
                f"CUDA device {cuda_index} is not visible: {_ENV}={value!r} makes "
                f"{len(visible)} GPU(s) visible")
        by_env = visible[cuda_index]

    if by_identity is None:
        assert by_env is not None
        return by_env
    uuid_form = value is not None and any(
        e.strip().lower().startswith("gpu-") for e in value.split(","))
    checkable = visible is not None and (
        uuid_form or env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID")
    if checkable and by_env != by_identity:
        raise InvalidInputError(
            f"CUDA device {cuda_index} is NVML GPU {by_identity} by its UUID/PCI bus id, but "
            f"{_ENV}={value!r} makes it NVML GPU {by_env}")
    return by_identity
