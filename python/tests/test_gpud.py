"""Unprivileged clocks from Python: gpud (root) and a training process (nobody).

The stand-in libnvidia-ml.so.1 (src/gpu/testing/fake_nvml.cc) with
FAKE_NVML_ROOT_ONLY=1 refuses clock changes from a non-root process with
NVML_ERROR_NO_PERMISSION, as a real GPU does. Each process loads its own
stand-in, so GPU state is per process: what gpud did to the clocks is read from
gpud's call log and from gpud itself (`perseus gpu info --gpud`).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Tuple

import pytest

import perseus
from conftest import BIN_DIR, GPT3

FAKE_NVML_DIR = BIN_DIR.resolve().parent / "fake_nvml"
PERSEUS = str(BIN_DIR.resolve() / "perseus")



def others_can_reach(path: pathlib.Path) -> bool:
    """Whether a user with no rights of owner or group can get to `path` (every folder o+x)."""
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents] if p.is_dir())


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="starts gpud as root and the training process as nobody (setpriv)")
# The training process runs as nobody: the build tree and Python must be reachable by it.
NOBODY_CAN_RUN = all(others_can_reach(p) for p in [
    FAKE_NVML_DIR, pathlib.Path(perseus.__file__).resolve().parent,
    pathlib.Path(sys.executable).parent])


def sm_state(log: pathlib.Path, gpu: int) -> int:
    """GPU `gpu`'s SM clock after the successful calls in `log`: MHz, 0 default, -1 untouched."""
    state = -1
    if not log.exists():
        return state
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) < 3 or not line.endswith(" -> 0") or fields[2] != str(gpu):
            continue
        if fields[1] == "nvmlDeviceSetGpuLockedClocks":
            state = int(fields[4])
        elif fields[1] == "nvmlDeviceResetGpuLockedClocks":
            state = 0
    return state


def gpud_status(socket: str) -> List[Dict[str, object]]:
    out = subprocess.run([PERSEUS, "gpu", "info", "--gpud", socket, "--json"], check=True,
                         capture_output=True, text=True).stdout
    gpus: List[Dict[str, object]] = json.loads(out)["gpus"]
    return gpus


def wait_for(predicate: "object", what: str, limit_s: float = 30.0) -> None:
    """Polls `predicate` until true; fails after `limit_s` (a hang guard, not a timing check)."""
    assert callable(predicate)
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit_s} s")
        time.sleep(0.01)


@pytest.fixture
def gpud() -> Iterator[Tuple[str, pathlib.Path, pathlib.Path]]:
    """gpud as root on the stand-in NVML; yields (socket, gpud's log, a folder nobody can use)."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="perseus-gpud-"))
    workdir.chmod(0o777)  # the training process (nobody) writes its NVML log here
    socket = str(workdir / "gpud.sock")
    log = workdir / "gpud.log"
    env = dict(os.environ, LD_LIBRARY_PATH=str(FAKE_NVML_DIR), FAKE_NVML_LOG=str(log),
               FAKE_NVML_ROOT_ONLY="1")
    server = subprocess.Popen([PERSEUS, "gpud", "--socket", socket, "--gpus", "0,1",
                               "--group", "nogroup", "--mode", "0660"], env=env)

    def up() -> bool:
        assert server.poll() is None, "gpud exited"
        return subprocess.run([PERSEUS, "gpu", "info", "--gpud", socket],
                              capture_output=True).returncode == 0

    try:
        wait_for(up, "answering")
        yield socket, log, workdir
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        shutil.rmtree(workdir)


TRAINING = r"""
import sys, time
import perseus

# Straight to NVML: refused, this process is not root.
direct = perseus.NvmlBackend()
try:
    direct[1].lock_sm_clock(1005)
    print("direct: accepted", flush=True)
except perseus.PermissionDeniedError as error:
    print("direct: refused: " + str(error), flush=True)

# Through gpud: PERSEUS_GPUD_SOCKET makes open_backend route the clocks there.
runtime = perseus.open_backend()
gpu = runtime[1]
controller = perseus.FrequencyController(gpu)
controller.set(1005)
controller.flush()
with perseus.measure(gpu) as m:
    time.sleep(0.01)
print("gpud: through_gpud=%s locked energy_j=%s" % (runtime.through_gpud, m.energy_j > 0),
      flush=True)
sys.stdin.read()  # train until killed
"""


@needs_root
@pytest.mark.skipif(not NOBODY_CAN_RUN, reason="nobody cannot reach the build tree or Python")
def test_nonroot_training_process_sets_clocks_through_gpud_and_kill_restores(gpud):
    socket, gpud_log, workdir = gpud
    training_log = workdir / "training.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "LD_LIBRARY_PATH": str(FAKE_NVML_DIR),
        "FAKE_NVML_ROOT_ONLY": "1",
        "FAKE_NVML_LOG": str(training_log),
        "PERSEUS_GPUD_SOCKET": socket,
        "HOME": str(workdir),
    }
    training = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
         sys.executable, "-c", TRAINING],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(workdir))
    try:
        assert training.stdout is not None
        direct = training.stdout.readline()
        assert direct.startswith("direct: refused: "), direct
        assert "changing GPU clocks needs root" in direct and "perseus gpud" in direct, direct
        # The stand-in saw the refused call, from a non-root process.
        assert "nvmlDeviceSetGpuLockedClocks 1 1005 1005 -> 4" in training_log.read_text()
        assert sm_state(training_log, 1) == -1

        through = training.stdout.readline()
        assert through.strip() == "gpud: through_gpud=True locked energy_j=True", through
        assert sm_state(gpud_log, 1) == 1005
        held = gpud_status(socket)[1]
        assert held["owner_pid"] == training.pid  # setpriv execs: same pid
        assert held["locked_sm_clock_mhz"] == 1005

        training.send_signal(signal.SIGKILL)
        assert training.wait() == -signal.SIGKILL
        wait_for(lambda: sm_state(gpud_log, 1) == 0, "restored by gpud")
        released = gpud_status(socket)[1]
        assert released["owner_pid"] == 0 and released["locked_sm_clock_mhz"] == 0
    finally:
        if training.poll() is None:
            training.kill()
            training.wait()


@needs_root
def test_gpud_backend_routes_clock_changes_and_reads_locally(gpud, monkeypatch):
    socket, gpud_log, workdir = gpud
    local_log = workdir / "local.log"
    monkeypatch.setenv("PERSEUS_NVML_LIBRARY", str(FAKE_NVML_DIR / "libnvidia-ml.so.1"))
    monkeypatch.setenv("FAKE_NVML_LOG", str(local_log))
    backend = perseus.GpudBackend(socket)
    assert backend.through_gpud and backend.backend == "nvml" and len(backend) == 2
    gpu = backend[0]
    assert gpu.uuid == "GPU-fake0000-0000-0000-0000-000000000000"
    assert gpu.pci_bus_id == "00000000:10:00.0"
    controller = perseus.FrequencyController(gpu, reset_on_signals=False)
    controller.set(1200)
    controller.flush()
    assert sm_state(gpud_log, 0) == 1200
    assert sm_state(local_log, 0) == -1  # this process's NVML only read
    assert gpud_status(socket)[0]["owner_pid"] == os.getpid()
    window = perseus.MeasurementWindow(gpu)
    window.begin()
    time_s, energy_j = window.end()
    assert time_s >= 0 and energy_j >= 0
    controller.set(1005)
    controller.flush()
    assert sm_state(gpud_log, 0) == 1005
    del controller  # restores the default clock, through gpud
    assert sm_state(gpud_log, 0) == 0


@needs_root
def test_gpud_backend_refuses_a_clock_gpud_does_not_support(gpud):
    socket, _, _ = gpud
    backend = perseus.GpudBackend(socket, backend="sim", sim_profile=str(GPT3))
    assert backend.backend == "sim" and backend.through_gpud
    with pytest.raises(perseus.PerseusError):
        backend[0].lock_sm_clock(1001)
