"""perseus.megatron against Megatron-Core itself (0.16.1): the order its schedule helpers give
against Perseus' built-in 1f1b and interleaved-1f1b, and the instrumentation around Megatron's
real forward_step / backward_step and forward_backward functions.

On a CPU-only torch, Megatron-Core 0.16.1's forward_backward functions cannot run: each
allocates `total_num_tokens = torch.zeros([], dtype=torch.int, device="cuda")` before its
first computation (schedules.py lines 596, 983 and 2138), which raises "Torch not compiled
with CUDA enabled". test_forward_backward_no_pipelining runs it for real when CUDA is there
and checks that exact failure otherwise."""

from __future__ import annotations

import pathlib
import subprocess
import warnings
from typing import Any, Dict, Iterator, List, Optional

import pytest

# The project's environment has Megatron-Core (scripts/setup.sh, python/requirements-nodeps.txt).
import megatron.core  # noqa: E402,F401

import torch  # noqa: E402

import perseus  # noqa: E402
import perseus.megatron as pmg  # noqa: E402
from hook_helpers import RecordingHook  # noqa: E402
from dist_helpers import free_port, torchrun  # noqa: E402
from perseus.torch import ScheduleOrder, Step  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Transformer Engine and Apex are not installed"
    from megatron.core.enums import ModelType  # noqa: E402
    from megatron.core.pipeline_parallel import schedules  # noqa: E402
    from megatron.core.transformer.transformer_config import TransformerConfig  # noqa: E402


def clock(step: Step) -> int:
    return 1410 if step.kind == "forward" else 1005 + 15 * (step.stage % 3)


def steps_of(order: ScheduleOrder, rank: int) -> List[tuple]:
    return [(s.kind, s.stage, s.microbatch) for s in order.ranks[rank]]


def plan_of(order: ScheduleOrder, rank: int) -> List[Dict[str, Any]]:
    return order.plan(lambda r, step: clock(step))[rank]


def builtin_csv(perseus_bin: str, tmp_path: pathlib.Path, stages: int, microbatches: int,
                virtual: Optional[int]) -> str:
    out = tmp_path / "ours.csv"
    schedule = ["--schedule", "1f1b"] if virtual is None else [
        "--schedule", "interleaved-1f1b", "--virtual-stages", str(virtual)]
    subprocess.run([perseus_bin, "show-schedule", *schedule, "--stages", str(stages),
                    "--microbatches", str(microbatches), "--csv", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out.read_text()


# --------------------------------------------------------------------------------------------
# The order


@pytest.mark.parametrize("stages,microbatches", [(1, 3), (2, 1), (2, 4), (3, 2), (4, 2), (4, 8),
                                                 (8, 12), (3, 7)])
def test_non_interleaved_order_is_builtin_1f1b(stages: int, microbatches: int, perseus_bin: str,
                                              tmp_path: pathlib.Path) -> None:
    assert pmg.schedule_csv(stages, microbatches) == builtin_csv(
        perseus_bin, tmp_path, stages, microbatches, None)


@pytest.mark.parametrize("stages,microbatches,virtual", [(2, 4, 2), (2, 6, 3), (3, 6, 2),
                                                         (4, 8, 2), (4, 12, 3), (2, 8, 4),
                                                         (4, 16, 2), (2, 4, 1)])
def test_interleaved_order_is_builtin_interleaved_1f1b(stages: int, microbatches: int,
                                                       virtual: int, perseus_bin: str,
                                                       tmp_path: pathlib.Path) -> None:
    assert pmg.schedule_csv(stages, microbatches, virtual) == builtin_csv(
        perseus_bin, tmp_path, stages, microbatches, virtual)


@pytest.mark.parametrize("stages,virtual", [(2, 2), (4, 2), (3, 3), (4, 3)])
def test_interleaved_with_as_many_microbatches_as_stages_is_builtin_too(
        stages: int, virtual: int, perseus_bin: str, tmp_path: pathlib.Path) -> None:
    """M == S: Megatron-Core <= 0.9 ran every forward first; 0.10 and later (and torch's
    ScheduleInterleaved1F1B) warm rank r up with min((S - r - 1) * 2 + (V - 1) * S, S * V)
    forwards, and so does Perseus' interleaved-1f1b."""
    assert pmg.schedule_csv(stages, stages, virtual) == builtin_csv(
        perseus_bin, tmp_path, stages, stages, virtual)
    last = pmg.schedule_order(stages, stages, virtual).ranks[stages - 1]
    warmup = (virtual - 1) * stages
    assert [s.kind for s in last[:warmup]] == ["forward"] * warmup
    assert [s.kind for s in last[warmup:warmup + 4]] == [
        "forward", "backward", "forward", "backward"]


def test_chunk_c_of_rank_r_is_stage_c_times_p_plus_r() -> None:
    order = pmg.schedule_order(2, 4, 2)
    assert (order.num_ranks, order.num_stages, order.microbatches) == (2, 4, 4)
    assert ",".join(step.cell() for step in order.ranks[0]) == (
        "0F0,0F1,2F0,2F1,0F2,2B0,0F3,2B1,2F2,0B0,2F3,0B1,2B2,2B3,0B2,0B3")
    assert {step.stage for step in order.ranks[1]} == {1, 3}


def test_megatron_shape_checks() -> None:
    with pytest.raises(perseus.InvalidInputError, match="mod microbatch_group_size"):
        pmg.schedule_order(4, 6, 2)  # 6 mod 4 = 2 < 4: Megatron refuses this shape
    with pytest.raises(perseus.InvalidInputError, match="must be in"):
        pmg.schedule_order(4, 2, 2)
    with pytest.raises(perseus.InvalidInputError, match="pipeline_parallel_size > 1"):
        pmg.schedule_order(1, 4, 2)


# --------------------------------------------------------------------------------------------
# The instrumentation, around Megatron's real forward_step and backward_step

HIDDEN = 4


class Chunk(torch.nn.Module):
    """One model chunk as Megatron's schedules need it: config, model_type, set_input_tensor."""

    def __init__(self, config: TransformerConfig, vp_stage: Optional[int]) -> None:
        super().__init__()
        self.config = config
        self.model_type = ModelType.encoder_or_decoder
        self.vp_stage = vp_stage
        self.linear = torch.nn.Linear(HIDDEN, HIDDEN)
        self.input_tensor: Optional[torch.Tensor] = None

    def set_input_tensor(self, tensors: List[Optional[torch.Tensor]]) -> None:
        self.input_tensor = tensors[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.input_tensor if self.input_tensor is not None else x)


def config_for(pipeline: int, virtual: Optional[int]) -> TransformerConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TransformerConfig(num_layers=2 * pipeline * (virtual or 1), hidden_size=HIDDEN,
                                 num_attention_heads=1, pipeline_model_parallel_size=pipeline,
                                 virtual_pipeline_model_parallel_size=virtual,
                                 pipeline_dtype=torch.float32)


def forward_step_func(data: Iterator[torch.Tensor], model: Chunk) -> Any:
    output = model(next(data))
    return output, lambda out: (out.pow(2).mean(), {"loss": out.pow(2).mean().detach()})


@pytest.mark.parametrize("pipeline,rank,microbatches,virtual",
                         [(2, 0, 4, None), (2, 1, 4, None), (4, 1, 3, None), (2, 0, 4, 2),
                          (2, 1, 6, 3), (4, 3, 8, 2)])
def test_real_forward_and_backward_steps_are_announced(pipeline: int, rank: int,
                                                       microbatches: int,
                                                       virtual: Optional[int]) -> None:
    """Drives Megatron's own forward_step / backward_step (through the patched module globals,
    as the schedules call them) in the order of rank `rank`, with the arguments the schedules
    pass: current_microbatch and, interleaved, vp_stage to forward_step; to backward_step the
    output object forward_step returned. No communication: inputs and output gradients are
    random tensors."""
    order = pmg.schedule_order(pipeline, microbatches, virtual)
    row = steps_of(order, rank)
    config = config_for(pipeline, virtual)
    chunks = [Chunk(config, c if virtual else None) for c in range(virtual or 1)]
    hook = RecordingHook(plan_of(order, rank), rank=rank)
    outputs: Dict[tuple, Any] = {}
    original = schedules.forward_step
    with pmg.instrument(hook) as instrumentation:
        assert schedules.forward_step is not original
        with instrumentation.step(pipeline, rank):
            for kind, stage, mb in row:
                chunk = stage // pipeline
                first = rank == 0 and chunk == 0
                last = rank == pipeline - 1 and chunk == len(chunks) - 1
                if kind == "forward":
                    x = None if first else torch.randn(2, 1, HIDDEN, requires_grad=True)
                    vp = {"vp_stage": chunk} if virtual else {}
                    # Interleaved passes one tensor; without interleaving, a list of them.
                    inputs = x if virtual else [x]
                    out, _ = schedules.forward_step(
                        forward_step_func, iter([torch.randn(2, 1, HIDDEN)]), chunks[chunk],
                        microbatches, inputs, [], config, 1, current_microbatch=mb,
                        is_last_stage=last, **vp)
                    outputs[(chunk, mb)] = (inputs, out)
                else:
                    inputs, out = outputs.pop((chunk, mb))
                    grad = None if last else torch.randn(2, 1, HIDDEN)
                    schedules.backward_step(inputs, out, grad if virtual else [grad],
                                            ModelType.encoder_or_decoder, config)
    assert schedules.forward_step is original
    assert hook.metrics.iterations == 1 and hook.metrics.mismatches == 0 and hook.seen == row
    assert all(c.linear.weight.grad is not None for c in chunks)  # the real backward ran
    clocks = [step["frequency_mhz"] for step in plan_of(order, rank)]
    assert hook.applied == [mhz for i, mhz in enumerate(clocks)
                            if i == 0 or mhz != clocks[i - 1]]


def test_backward_of_an_unknown_output_takes_the_oldest_forward() -> None:
    config = config_for(2, None)
    chunk = Chunk(config, None)
    row = [("forward", 1, 0), ("forward", 1, 1), ("backward", 1, 0), ("backward", 1, 1)]
    hook = RecordingHook([Step(*c).as_plan_step(1410) for c in row], rank=1)
    with pmg.instrument(hook, pipeline_rank=1, pipeline_size=2) as instrumentation:
        with instrumentation.step():
            outs = []
            for mb in range(2):
                x = [torch.randn(2, 1, HIDDEN, requires_grad=True)]
                out, _ = schedules.forward_step(forward_step_func, iter([None]), chunk, 2, x,
                                                [], config, 1, current_microbatch=mb,
                                                is_last_stage=True)
                outs.append((x, out))
            for x, out in outs:  # a copy of the list: not the object forward_step returned
                schedules.backward_step(x, list(out), [None], ModelType.encoder_or_decoder,
                                        config)
    assert hook.seen == row


def test_instrument_patches_and_restores_module_globals() -> None:
    names = ["forward_step", "backward_step", "forward_backward_no_pipelining",
             "forward_backward_pipelining_without_interleaving",
             "forward_backward_pipelining_with_interleaving"]
    before = {name: getattr(schedules, name) for name in names}
    hook = RecordingHook([])
    with pmg.instrument(hook):
        assert all(getattr(schedules, name) is not before[name] for name in names)
        # get_forward_backward_func looks the functions up by name: it returns the wrapped ones.
        func = schedules.get_forward_backward_func(pp_size=2, vp_size=2)
        assert func.__wrapped__ is before["forward_backward_pipelining_with_interleaving"]
        with pytest.raises(perseus.InvalidInputError, match="already instrumented"):
            pmg.instrument(hook)
    assert {name: getattr(schedules, name) for name in names} == before
    # Outside a step, the patched functions only pass calls through (nothing announced).


# --------------------------------------------------------------------------------------------
# Megatron's real forward_backward_no_pipelining (one process, gloo)


@pytest.fixture
def model_parallel() -> Iterator[None]:
    import torch.distributed as dist
    from megatron.core import parallel_state

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                            world_size=1)
    try:
        parallel_state.initialize_model_parallel()
        yield
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()


def test_forward_backward_no_pipelining(model_parallel: None) -> None:
    microbatches = 3
    order = pmg.schedule_order(1, microbatches)
    row = steps_of(order, 0)
    assert order.csv() == "0F0,0B0,0F1,0B1,0F2,0B2\n"
    config = config_for(1, None)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = Chunk(config, None).to(device)
    data = iter([torch.randn(2, 1, HIDDEN, device=device) for _ in range(microbatches)])
    hook = RecordingHook(plan_of(order, 0))
    with pmg.instrument(hook):
        func = schedules.get_forward_backward_func()
        assert func.__name__ == "forward_backward_no_pipelining"

        def run(forward_only: bool) -> Any:
            return func(forward_step_func=forward_step_func, data_iterator=data, model=model,
                        num_microbatches=microbatches, seq_length=2, micro_batch_size=1,
                        forward_only=forward_only)

        if torch.cuda.is_available():
            losses = run(False)
            assert len(losses) == microbatches
            assert hook.metrics.iterations == 1 and hook.seen == row
        else:
            # Megatron-Core 0.16.1, schedules.py:596, before the first forward_step:
            #     total_num_tokens = torch.zeros([], dtype=torch.int, device="cuda")
            with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
                run(False)
            assert hook.metrics.aborted_steps == 1 and hook.seen == []
            # Evaluation (forward_only) is no step: the hook is told it is unplanned work.
            with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
                run(True)
            assert hook.unplanned == 1 and hook.metrics.aborted_steps == 1
            assert hook.metrics.iterations == 0
            hook.on_step_begin()  # the aborted step is not left open (strict would raise)


# --------------------------------------------------------------------------------------------
# Megatron's real pipelined schedule loops, two processes on gloo, with a device shim
#
# Not a plain run: on a CPU-only torch these loops fail at their CUDA allocations (see the top
# of this file), so the worker below shims torch -- never Megatron -- before importing
# Megatron: torch.zeros(..., device="cuda") allocates on the CPU, torch.cuda.current_device()
# is "cpu" (the p2p receive buffers) and torch.cuda.synchronize() does nothing. Megatron's
# schedules.py and p2p_communication.py then run unmodified: their loops, FIFO lists, model
# chunk tables and gloo sends/receives. This checks schedule_order() against the order the
# loops really execute and the backward-by-output-identity mapping inside them.

SHIM_SHAPES = [(4, None), (1, None), (3, None), (4, 2), (2, 2), (6, 3)]  # (M, V), P = 2


def test_real_pipelined_loops_announce_schedule_order(tmp_path: pathlib.Path) -> None:
    import json
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun(__file__, "worker", str(tmp_path), env=env)
    for rank in range(2):
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert len(results) == len(SHIM_SHAPES)
        for (microbatches, virtual), got in zip(SHIM_SHAPES, results):
            expected = [list(c) for c in steps_of(pmg.schedule_order(2, microbatches, virtual),
                                                  rank)]
            assert got["function"] == ("forward_backward_pipelining_with_interleaving" if virtual
                                       else "forward_backward_pipelining_without_interleaving")
            assert got["seen"] == expected, (microbatches, virtual, rank)
            assert got["metrics"]["iterations"] == 1 and got["metrics"]["mismatches"] == 0
            assert got["losses"] == (microbatches if rank == 1 else 0)  # the last stage's


def _shim_cuda_allocations() -> None:
    zeros = torch.zeros

    def cpu_zeros(*args: Any, **kwargs: Any) -> torch.Tensor:
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return zeros(*args, **kwargs)

    torch.zeros = cpu_zeros  # type: ignore[assignment]
    torch.cuda.current_device = lambda: "cpu"  # type: ignore[assignment,return-value]
    torch.cuda.synchronize = lambda *args, **kwargs: None  # type: ignore[assignment]


def _worker(out_dir: str) -> None:
    import json

    import torch.distributed as dist
    from megatron.core import parallel_state

    _shim_cuda_allocations()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results = []
    for microbatches, virtual in SHIM_SHAPES:
        parallel_state.initialize_model_parallel(pipeline_model_parallel_size=2,
                                                 virtual_pipeline_model_parallel_size=virtual)
        config = config_for(2, virtual)
        model = [Chunk(config, c if virtual else None) for c in range(virtual or 1)]
        data = [iter([torch.randn(2, 1, HIDDEN) for _ in range(microbatches)]) for _ in model]
        hook = RecordingHook(plan_of(pmg.schedule_order(2, microbatches, virtual), rank),
                             rank=rank)
        with pmg.instrument(hook):
            func = schedules.get_forward_backward_func()
            losses = func(forward_step_func=forward_step_func,
                          data_iterator=data if virtual else data[0],
                          model=model if virtual else model[0], num_microbatches=microbatches,
                          seq_length=2, micro_batch_size=1)
        results.append({"function": func.__name__, "seen": [list(c) for c in hook.seen],
                        "metrics": hook.metrics.as_dict(), "losses": len(losses)})
        parallel_state.destroy_model_parallel()
    pathlib.Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        _worker(sys.argv[2])
