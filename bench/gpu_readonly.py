#!/usr/bin/env python3
"""Read-only measurements on a machine with a real GPU; changes no GPU setting.

    .venv/bin/python bench/gpu_readonly.py [--seconds 20] [--json] [--perseus PATH] [--gpu N]

Three parts, in this order:

1. `perseus gpu info --json` against the driver (supported SM clocks, energy counter, power),
   printed as it answers, or its error line.
2. The energy counter: a thread polls nvmlDeviceGetTotalEnergyConsumption as fast as it can
   for --seconds while a PyTorch CUDA matrix-multiply loop keeps the GPU busy (idle, and said
   so, without CUDA in torch); reported: the intervals between distinct counter values
   (median, p10, p90), the smallest nonzero increment, the mean power from the counter against
   nvmlDeviceGetPowerUsage samples, and the SM clocks seen.
3. perseus.torch.PerseusHook's CPU cost per computation (on_instruction_begin + _end) with a
   clock setter that only records the requests: a bare loop, and a small training loop (CUDA
   when torch has it, else CPU, and said so).

NVML is read through ctypes (libnvidia-ml.so.1, or $PERSEUS_NVML_LIBRARY as `perseus` itself
reads it) and only with the read functions in _NVML_READS: no function that changes a clock, a
power limit or any other setting is named in this file (python/tests/test_gpu_readonly.py
checks that). The script never takes a clock or lock on the GPU; without a driver or a GPU it
says so and exits 0. It exits 1 only when something that should have worked failed.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAX_SECONDS = 120.0  # with the rest, the whole run stays under 5 minutes

# The only NVML functions this script resolves; all of them read.
_NVML_READS = (
    "nvmlInit_v2", "nvmlShutdown", "nvmlErrorString", "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetName", "nvmlDeviceGetUUID",
    "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetClockInfo",
)
_NVML_SUCCESS = 0
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_CLOCK_SM = 1
_NAME_LENGTH = 96
_MAX_CHANGES = 4_000_000  # counter changes kept (the stand-in NVML changes at every read)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of the sorted `ordered`, linearly interpolated."""
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> Dict[str, Any]:
    """count, median, p10, p90, p99, mean, min, max of `values` * scale."""
    if not values:
        return {"count": 0}
    v = sorted(x * scale for x in values)
    stats = {"median": percentile(v, 50), "p10": percentile(v, 10), "p90": percentile(v, 90),
             "p99": percentile(v, 99), "mean": statistics.fmean(v), "min": v[0], "max": v[-1]}
    return {"count": len(v), **{name: round(x, digits) for name, x in stats.items()}}


# ---------------------------------------------------------------------------------------------
# 1. perseus gpu info --json


def find_perseus(explicit: Optional[str]) -> Optional[str]:
    if explicit:
        return explicit
    built = ROOT / "build" / "bin" / "perseus"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    return shutil.which("perseus")


def gpu_info(perseus: Optional[str]) -> Dict[str, Any]:
    """Runs `perseus gpu info --json`: its JSON, or its exit status and error line."""
    if perseus is None:
        return {"ok": False, "command": None,
                "error": "no perseus executable (build/bin/perseus, PATH); pass --perseus"}
    command = [perseus, "gpu", "info", "--json"]
    result: Dict[str, Any] = {"command": " ".join(command)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {**result, "ok": False, "error": f"{type(error).__name__}: {error}"}
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    result.update(rc=done.returncode, stderr=lines)
    if done.returncode != 0:
        return {**result, "ok": False, "error": lines[-1] if lines else f"exit {done.returncode}"}
    try:
        return {**result, "ok": True, "json": json.loads(done.stdout)}
    except ValueError as error:
        return {**result, "ok": False, "error": f"not JSON ({error}): {done.stdout[:200]!r}"}


# ---------------------------------------------------------------------------------------------
# 2. NVML, read only


class NvmlError(Exception):
    def __init__(self, function: str, code: int, text: str) -> None:
        super().__init__(f"{function}: {text} (NVML error {code})")
        self.code = code


class Nvml:
    """libnvidia-ml through ctypes, with only the functions in _NVML_READS."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lib = ctypes.CDLL(path)  # OSError: no driver
        self._fn: Dict[str, Any] = {}
        for name in _NVML_READS:
            function = getattr(self._lib, name)  # AttributeError: not NVML
            function.restype = ctypes.c_char_p if name == "nvmlErrorString" else ctypes.c_int
            self._fn[name] = function
        self._fn["nvmlErrorString"].argtypes = [ctypes.c_int]

    def _call(self, name: str, *args: Any) -> None:
        code = int(self._fn[name](*args))
        if code != _NVML_SUCCESS:
            text = self._fn["nvmlErrorString"](code)
            raise NvmlError(name, code, text.decode(errors="replace") if text else "?")

    def init(self) -> None:
        self._call("nvmlInit_v2")

    def shutdown(self) -> None:
        self._call("nvmlShutdown")

    def count(self) -> int:
        n = ctypes.c_uint(0)
        self._call("nvmlDeviceGetCount_v2", ctypes.byref(n))
        return n.value

    def handle(self, index: int) -> ctypes.c_void_p:
        h = ctypes.c_void_p()
        self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(h))
        return h

    def _text(self, name: str, h: ctypes.c_void_p) -> str:
        buffer = ctypes.create_string_buffer(_NAME_LENGTH)
        self._call(name, h, buffer, ctypes.c_uint(_NAME_LENGTH))
        return buffer.value.decode(errors="replace")

    def name(self, h: ctypes.c_void_p) -> str:
        return self._text("nvmlDeviceGetName", h)

    def uuid(self, h: ctypes.c_void_p) -> str:
        return self._text("nvmlDeviceGetUUID", h)

    def energy_reader(self, h: ctypes.c_void_p) -> Callable[[], int]:
        """A fast reader of the energy counter (mJ since the driver loaded)."""
        function = self._fn["nvmlDeviceGetTotalEnergyConsumption"]
        value = ctypes.c_ulonglong(0)
        pointer = ctypes.byref(value)

        def read() -> int:
            code = int(function(h, pointer))
            if code != _NVML_SUCCESS:
                self._call("nvmlDeviceGetTotalEnergyConsumption", h, pointer)  # raises
            return value.value

        return read

    def power_w(self, h: ctypes.c_void_p) -> float:
        mw = ctypes.c_uint(0)
        self._call("nvmlDeviceGetPowerUsage", h, ctypes.byref(mw))
        return mw.value / 1000.0

    def sm_clock_mhz(self, h: ctypes.c_void_p) -> int:
        mhz = ctypes.c_uint(0)
        self._call("nvmlDeviceGetClockInfo", h, ctypes.c_int(_NVML_CLOCK_SM), ctypes.byref(mhz))
        return mhz.value


def _normalize_uuid(uuid: str) -> str:
    text = uuid.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def cuda_device_for(torch: Any, uuid: Optional[str]) -> Tuple[int, str]:
    """The CUDA index of the NVML GPU with `uuid` (CUDA may renumber): (index, how found)."""
    if uuid is not None:
        for i in range(torch.cuda.device_count()):
            cuda_uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
            if cuda_uuid is not None and _normalize_uuid(str(cuda_uuid)) == _normalize_uuid(uuid):
                return i, "matched by UUID"
    return 0, "UUID not matched: assumed CUDA device 0"


class MatmulLoad:
    """Half-precision matrix multiplies on one CUDA device until stopped."""

    def __init__(self, torch: Any, device: int, n: int = 8192) -> None:
        self._torch = torch
        self._device = torch.device("cuda", device)
        self.n = n
        self._a = torch.randn(n, n, device=self._device, dtype=torch.float16)
        self._b = torch.randn(n, n, device=self._device, dtype=torch.float16)
        self.count = 0
        self.seconds = 0.0
        self.run_for(0.5)  # warm-up (cuBLAS handles, clocks ramp)
        self.count, self.seconds = 0, 0.0

    def run_for(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(8):
                self._torch.matmul(self._a, self._b)
            self._torch.cuda.synchronize(self._device)
            self.count += 8
        self.seconds += time.perf_counter() - start

    def tflops(self) -> float:
        return 2.0 * self.n ** 3 * self.count / self.seconds / 1e12 if self.seconds else 0.0


def poll_energy(nvml: Nvml, h: ctypes.c_void_p, seconds: float,
                load: Optional[Callable[[float], None]]) -> Dict[str, Any]:
    """Polls the energy counter from a thread (and power and SM clock from another, every
    10 ms) for `seconds` while `load` runs (or the GPU idles)."""
    read = nvml.energy_reader(h)
    times = array.array("q")  # perf_counter_ns at each new value
    values = array.array("q")  # the new value (mJ)
    polls = [0]
    polled_ns = [0]  # when the energy thread stopped
    truncated = [False]
    power: List[float] = []
    clocks: List[int] = []
    errors: List[str] = []
    unsupported: List[str] = []  # NVML_ERROR_NOT_SUPPORTED: reported, not an error
    stop = threading.Event()

    def failed(error: NvmlError) -> None:
        (unsupported if error.code == _NVML_ERROR_NOT_SUPPORTED else errors).append(str(error))

    def energy_thread() -> None:
        try:
            last = read()
            times.append(time.perf_counter_ns())
            values.append(last)
            while not stop.is_set():
                value = read()
                polls[0] += 1
                if value != last:
                    if len(times) >= _MAX_CHANGES:
                        truncated[0] = True  # the counter then covers less than `seconds`
                        return
                    times.append(time.perf_counter_ns())
                    values.append(value)
                    last = value
        except NvmlError as error:
            failed(error)
        finally:
            polled_ns[0] = time.perf_counter_ns()

    def sample_thread() -> None:
        while not stop.wait(0.01):
            try:
                power.append(nvml.power_w(h))
                clocks.append(nvml.sm_clock_mhz(h))
            except NvmlError as error:
                failed(error)
                return

    threads = [threading.Thread(target=energy_thread, daemon=True),
               threading.Thread(target=sample_thread, daemon=True)]
    start = time.perf_counter_ns()
    for t in threads:
        t.start()
    try:
        if load is not None:
            load(seconds)
        else:
            time.sleep(seconds)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    elapsed_s = (time.perf_counter_ns() - start) / 1e9
    result: Dict[str, Any] = {"seconds": round(elapsed_s, 3), "polls": polls[0],
                              "poll_us_mean": round((polled_ns[0] - start) / 1e3 / polls[0], 3)
                              if polls[0] else None,
                              "distinct_values": len(values), "errors": sorted(set(errors)),
                              "not_supported": sorted(set(unsupported))}
    if truncated[0]:
        result["note"] = (f"stopped polling after {_MAX_CHANGES} distinct values (at "
                          f"{(times[-1] - start) / 1e9:.1f} s)")
    if len(values) >= 2:
        intervals = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
        increments = [b - a for a, b in zip(values, values[1:])]
        positive = [d for d in increments if d > 0]
        span_s = (times[-1] - times[1]) / 1e9
        result["change_interval_ms"] = summary(intervals)
        result["min_increment_mj"] = min(positive) if positive else None
        result["increment_mj"] = summary(increments)
        result["decreases"] = sum(1 for d in increments if d < 0)
        # From the first change to the last: whole update periods only.
        result["counter_power_w"] = (round((values[-1] - values[1]) / 1000.0 / span_s, 2)
                                     if len(values) >= 3 and span_s > 0 else None)
        result["energy_j"] = round((values[-1] - values[0]) / 1000.0, 3)
    result["power_usage_w"] = summary(power, digits=2)
    result["sm_clock_mhz"] = summary([float(c) for c in clocks], digits=0)
    return result


def measure_nvml(args: argparse.Namespace, torch: Any, errors: List[str]) -> Dict[str, Any]:
    path = os.environ.get("PERSEUS_NVML_LIBRARY") or "libnvidia-ml.so.1"
    out: Dict[str, Any] = {"library": path, "available": False}
    try:
        nvml = Nvml(path)
    except OSError as error:
        out["reason"] = f"no NVIDIA driver / no GPU: cannot load {path} ({error})"
        return out
    except AttributeError as error:
        out["reason"] = f"{path} is not a usable libnvidia-ml: {error}"
        errors.append(out["reason"])
        return out
    try:
        nvml.init()
    except NvmlError as error:
        out["reason"] = f"no NVIDIA driver / no GPU: {error}"
        return out
    try:
        count = nvml.count()
        out["device_count"] = count
        if count == 0:
            out["reason"] = "no GPU: NVML sees no device"
            return out
        index = args.gpu
        cuda_ok = torch is not None and torch.cuda.is_available()
        if index is None and cuda_ok:  # the NVML GPU of CUDA device 0
            wanted = _normalize_uuid(str(getattr(torch.cuda.get_device_properties(0), "uuid", "")))
            index = next((i for i in range(count)
                          if _normalize_uuid(nvml.uuid(nvml.handle(i))) == wanted), 0)
        index = index or 0
        if not 0 <= index < count:
            raise NvmlError("--gpu", 2, f"GPU {index} of {count}")
        h = nvml.handle(index)
        uuid = nvml.uuid(h)
        out.update(available=True, gpu=index, name=nvml.name(h), uuid=uuid)
        load: Optional[Callable[[float], None]] = None
        matmul: Optional[MatmulLoad] = None
        if cuda_ok:
            cuda_index, how = cuda_device_for(torch, uuid)
            matmul = MatmulLoad(torch, cuda_index)
            load = matmul.run_for
            out["load"] = f"fp16 {matmul.n}x{matmul.n} matmul loop on cuda:{cuda_index} ({how})"
        else:
            out["load"] = "none: the GPU idled (torch has no CUDA here)"
        out["energy_counter"] = poll_energy(nvml, h, args.seconds, load)
        if matmul is not None:
            out["matmul"] = {"count": matmul.count, "tflops": round(matmul.tflops(), 1)}
        errors.extend(out["energy_counter"]["errors"])
    except (NvmlError, RuntimeError) as error:  # RuntimeError: torch's CUDA errors
        errors.append(f"{type(error).__name__}: {error}")
        out["error"] = errors[-1]
    finally:
        try:
            nvml.shutdown()
        except NvmlError as error:
            errors.append(str(error))
    return out


# ---------------------------------------------------------------------------------------------
# 3. The hook's CPU cost


def import_perseus_torch() -> Any:
    try:
        import perseus.torch as hooks
    except ImportError:
        sys.path.insert(0, str(ROOT / "build" / "python"))
        for name in [m for m in sys.modules if m == "perseus" or m.startswith("perseus.")]:
            del sys.modules[name]
        import perseus.torch as hooks
    return hooks


def one_stage_plan(microbatches: int, clocks: Sequence[int]) -> List[Dict[str, Any]]:
    """One rank's 1F1B-like order (all forwards, then all backwards), cycling through
    `clocks` so that every computation asks for a new clock."""
    steps = [(kind, m) for kind in ("forward", "backward") for m in range(microbatches)]
    return [{"kind": kind, "stage": 0, "microbatch": m, "frequency_mhz": clocks[i % len(clocks)]}
            for i, (kind, m) in enumerate(steps)]


def timer_overhead_ns() -> float:
    samples = []
    for _ in range(20000):
        a = time.perf_counter_ns()
        b = time.perf_counter_ns()
        samples.append(b - a)
    return statistics.median(samples)


def hook_loop(hooks: Any, plan: List[Dict[str, Any]], steps: int, max_seconds: float,
              work: Optional[Callable[[str, int], None]] = None,
              end_step: Optional[Callable[[], None]] = None) -> Dict[str, Any]:
    """Runs `steps` iterations of `plan` through a PerseusHook whose clock setter records;
    times each on_instruction_begin + on_instruction_end pair (not `work`)."""
    requests: List[int] = []
    hook = hooks.PerseusHook(plan=plan, set_frequency=requests.append, strict=False)
    per_instruction: List[int] = []
    per_step: List[int] = []
    order = [(str(s["kind"]), int(s["microbatch"])) for s in plan]
    start = time.perf_counter()
    done = 0
    for _ in range(steps):
        t0 = time.perf_counter_ns()
        hook.on_step_begin()
        step_ns = time.perf_counter_ns() - t0
        for kind, microbatch in order:
            a = time.perf_counter_ns()
            hook.on_instruction_begin(kind, microbatch, 0)
            b = time.perf_counter_ns()
            if work is not None:
                work(kind, microbatch)
            c = time.perf_counter_ns()
            hook.on_instruction_end(kind, microbatch, 0)
            d = time.perf_counter_ns()
            per_instruction.append((b - a) + (d - c))
        if end_step is not None:
            end_step()
        t0 = time.perf_counter_ns()
        hook.on_step_end()
        per_step.append(step_ns + time.perf_counter_ns() - t0)
        done += 1
        if time.perf_counter() - start > max_seconds:
            break
    metrics = hook.metrics.as_dict()
    return {"steps": done, "instructions": len(per_instruction),
            "wall_s": round(time.perf_counter() - start, 3),
            "us_per_instruction": summary(per_instruction, scale=1e-3),
            "us_per_step_begin_end": summary(per_step, scale=1e-3),
            "clock_requests_recorded": len(requests), "mismatches": metrics["mismatches"],
            "errors": metrics["errors"]}


class TinyTraining:
    """A two-layer MLP trained with per-microbatch forwards and backwards (one stage)."""

    def __init__(self, torch: Any, device: str, width: int, batch: int,
                 microbatches: int) -> None:
        self._torch = torch
        self.device = device
        torch.manual_seed(0)
        self._model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                          torch.nn.Linear(width, width)).to(device)
        self._optimizer = torch.optim.SGD(self._model.parameters(), lr=1e-3)
        self._inputs = [torch.randn(batch, width, device=device) for _ in range(microbatches)]
        self._targets = [torch.randn(batch, width, device=device) for _ in range(microbatches)]
        self._losses: Dict[int, Any] = {}

    def work(self, kind: str, microbatch: int) -> None:
        if kind == "forward":
            out = self._model(self._inputs[microbatch])
            self._losses[microbatch] = self._torch.nn.functional.mse_loss(
                out, self._targets[microbatch])
        else:
            self._losses.pop(microbatch).backward()

    def end_step(self) -> None:
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize()  # as a step end measuring time and energy does


def measure_hook(torch: Any, cuda_index: int, steps: int, errors: List[str]) -> Dict[str, Any]:
    try:
        hooks = import_perseus_torch()
    except ImportError as error:
        errors.append(f"import perseus.torch: {error}")
        return {"error": f"import perseus.torch: {error}"}
    microbatches = 16
    plan = one_stage_plan(microbatches, [1980, 1755, 1500, 1305])
    out: Dict[str, Any] = {
        "perseus": str(pathlib.Path(hooks.__file__).resolve().parent),
        "plan": f"{len(plan)} computations per step (1 stage, {microbatches} microbatches), "
                "a new clock for each",
        "set_frequency": "records the request only (list.append); nothing is set",
        "timer_overhead_ns": timer_overhead_ns(),
        "bare": hook_loop(hooks, plan, steps=steps, max_seconds=30.0),
    }
    if torch is None:
        out["training_loop"] = {"note": "torch is not installed: no training loop"}
        return out
    cuda = torch.cuda.is_available()
    device = f"cuda:{cuda_index}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(cuda_index)
    training = (TinyTraining(torch, device, width=4096, batch=256, microbatches=microbatches)
                if cuda else
                TinyTraining(torch, device, width=256, batch=32, microbatches=microbatches))
    for _ in range(3):  # warm-up
        for kind, m in [(str(s["kind"]), int(s["microbatch"])) for s in plan]:
            training.work(kind, m)
        training.end_step()
    loop = hook_loop(hooks, plan, steps=min(steps, 300), max_seconds=30.0, work=training.work,
                     end_step=training.end_step)
    loop["device"] = device
    loop["note"] = ("fp32 MLP 4096x4096 x2, batch 256, on the GPU (kernels run while the "
                    "hook is timed)" if cuda else
                    "no CUDA in torch here: the training loop ran on the CPU")
    out["training_loop"] = loop
    return out


# ---------------------------------------------------------------------------------------------


def print_table(report: Dict[str, Any]) -> None:
    print(f"host: {report['host']['cpus']} CPUs, python {report['host']['python']}, "
          f"torch {report['host']['torch']} (CUDA {report['host']['cuda']})")
    info = report["gpu_info"]
    print(f"\n1. {info.get('command') or 'perseus gpu info --json'}")
    if info["ok"]:
        for g in info["json"].get("gpus", []):
            clocks = g.get("supported_sm_clocks_mhz") or []
            clock_text = f"{len(clocks)} ({min(clocks)}..{max(clocks)})" if clocks else "-"
            print(f"   GPU {g.get('index')} {g.get('name')}: SM {g.get('sm_clock_mhz')} MHz, "
                  f"supported SM clocks {clock_text}, energy {g.get('energy_mj')} mJ, "
                  f"power {g.get('power_w')} W")
        print(f"   backend {info['json'].get('backend')}, {info['json'].get('version')}")
    else:
        print(f"   failed: {info['error']}")
    nvml = report["nvml"]
    print(f"\n2. energy counter ({nvml['library']})")
    if not nvml["available"]:
        print(f"   not measured: {nvml.get('reason') or nvml.get('error')}")
    else:
        e = nvml.get("energy_counter", {})
        print(f"   GPU {nvml['gpu']} {nvml['name']} ({nvml['uuid']}); load: {nvml['load']}")
        print(f"   {e.get('polls')} polls in {e.get('seconds')} s ({e.get('poll_us_mean')} µs "
              f"each), {e.get('distinct_values')} distinct values")
        if e.get("note"):
            print(f"   {e['note']}")
        iv = e.get("change_interval_ms", {})
        if iv.get("count"):
            print(f"   update interval ms: median {iv['median']}, p10 {iv['p10']}, "
                  f"p90 {iv['p90']} (n={iv['count']})")
            print(f"   smallest nonzero increment {e.get('min_increment_mj')} mJ; "
                  f"decreases {e.get('decreases')}")
        pw = e.get("power_usage_w", {})
        print(f"   mean power: counter {e.get('counter_power_w')} W, "
              f"nvmlDeviceGetPowerUsage {pw.get('mean')} W (n={pw.get('count')})")
        sm = e.get("sm_clock_mhz", {})
        if sm.get("count"):
            print(f"   SM clock MHz: min {sm['min']}, median {sm['median']}, max {sm['max']}")
        if "matmul" in nvml:
            print(f"   matmuls: {nvml['matmul']['count']}, {nvml['matmul']['tflops']} TFLOP/s")
    hook = report["hook_cost"]
    print("\n3. PerseusHook CPU cost (on_instruction_begin + on_instruction_end)")
    if "error" in hook:
        print(f"   not measured: {hook['error']}")
    else:
        print(f"   {hook['plan']}; set_frequency {hook['set_frequency']}")
        print(f"   perf_counter_ns overhead: {hook['timer_overhead_ns']} ns per timed span, two "
          "spans per computation (included)")
        for name in ("bare", "training_loop"):
            loop = hook.get(name, {})
            us = loop.get("us_per_instruction")
            if us is None:
                print(f"   {name}: {loop.get('note')}")
                continue
            where = f" on {loop['device']}" if "device" in loop else ""
            print(f"   {name}{where}: median {us['median']} µs, p99 {us['p99']} µs per "
                  f"computation (n={us['count']}, {loop['steps']} steps, "
                  f"{loop['clock_requests_recorded']} clock requests recorded)")
            if "note" in loop:
                print(f"      {loop['note']}")
    for error in report["errors"]:
        print(f"error: {error}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Read-only GPU measurements: perseus gpu info, the NVML energy counter's "
                    "update period and resolution under a matmul load, and PerseusHook's CPU "
                    "cost per computation. Changes no GPU setting. NVML library: "
                    "$PERSEUS_NVML_LIBRARY, else libnvidia-ml.so.1.")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help=f"how long the matmul loop runs while the energy counter is "
                             f"polled (default 20, at most {MAX_SECONDS:g})")
    parser.add_argument("--perseus", metavar="PATH",
                        help="the perseus executable (default build/bin/perseus if it "
                             "exists, else perseus on PATH)")
    parser.add_argument("--gpu", type=int, default=None,
                        help="NVML index of the GPU to poll (default: CUDA device 0's GPU)")
    parser.add_argument("--hook-steps", type=int, default=2000,
                        help="steps of 32 computations for the hook's bare loop (default "
                             "2000; the training loop runs at most 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if args.hook_steps < 1:
        parser.error("--hook-steps must be at least 1")
    started = time.perf_counter()
    errors: List[str] = []
    torch: Any = None
    try:
        import torch as torch_module
        torch = torch_module
    except ImportError:
        pass
    cuda = torch is not None and torch.cuda.is_available()
    report: Dict[str, Any] = {
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "torch": getattr(torch, "__version__", None), "cuda": cuda,
                 "cuda_devices": torch.cuda.device_count() if cuda else 0},
    }
    report["gpu_info"] = gpu_info(find_perseus(args.perseus))
    report["nvml"] = measure_nvml(args, torch, errors)
    if report["nvml"]["available"] and not report["gpu_info"]["ok"]:
        errors.append(f"perseus gpu info failed with NVML working: {report['gpu_info']['error']}")
    cuda_index = 0
    if cuda and report["nvml"].get("uuid"):
        cuda_index = cuda_device_for(torch, report["nvml"]["uuid"])[0]
    report["hook_cost"] = measure_hook(torch, cuda_index, args.hook_steps, errors)
    report["gpu_available"] = bool(report["nvml"]["available"])
    report["errors"] = errors
    report["wall_s"] = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
        print(f"\n{report['wall_s']} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
