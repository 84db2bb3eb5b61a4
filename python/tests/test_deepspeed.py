"""perseus.deepspeed against DeepSpeed itself (0.19.8): the TrainSchedule order equals Perseus'
built-in 1f1b, and a real PipelineEngine trained on CPU (gloo, DS_ACCELERATOR=cpu, two
processes) announces exactly that order to a strict hook.

This file is also the worker the multi-process test starts (`python test_deepspeed.py worker
OUT_DIR` under torch.distributed.run)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any, Dict, List

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
# The project's environment has DeepSpeed (scripts/setup.sh, python/requirements-nodeps.txt).
import deepspeed  # noqa: E402,F401

import perseus.deepspeed as pds  # noqa: E402
from hook_helpers import RecordingHook  # noqa: E402
from dist_helpers import torchrun  # noqa: E402
from perseus.torch import PlanMismatchError, Step  # noqa: E402


def planned_clock(step: Step) -> int:
    """A made-up plan: forwards at 1410 MHz, backwards alternating 1005 / 1200 MHz."""
    return 1410 if step.kind == "forward" else (1005 if step.microbatch % 2 == 0 else 1200)


def plan_for(stages: int, microbatches: int, rank: int) -> List[Dict[str, Any]]:
    return pds.schedule_order(stages, microbatches).plan(lambda r, step: planned_clock(step))[rank]


def cells(stages: int, microbatches: int, rank: int) -> List[List[Any]]:
    return [[s.kind, s.stage, s.microbatch]
            for s in pds.schedule_order(stages, microbatches).ranks[rank]]


# --------------------------------------------------------------------------------------------
# The order


ORDER_SHAPES = [(1, 3), (2, 1), (2, 4), (3, 2), (4, 4), (4, 8), (5, 3), (8, 12), (3, 7)]


@pytest.mark.parametrize("stages,microbatches", ORDER_SHAPES)
def test_trainschedule_order_is_builtin_1f1b(stages: int, microbatches: int, perseus_bin: str,
                                            tmp_path: pathlib.Path) -> None:
    ours = tmp_path / "ours.csv"
    subprocess.run([perseus_bin, "show-schedule", "--schedule", "1f1b", "--stages", str(stages),
                    "--microbatches", str(microbatches), "--csv", str(ours)],
                   check=True, stdout=subprocess.DEVNULL)
    assert pds.schedule_csv(stages, microbatches) == ours.read_text()


def test_microbatches_come_from_step_ids_not_buffer_ids() -> None:
    from deepspeed.runtime.pipe import schedule

    sched = schedule.TrainSchedule(micro_batches=8, stages=4, stage_id=0)
    assert sched.num_pipe_buffers() == 4
    forwards = [cmd.buffer_id for step in sched.steps() for cmd in step
                if isinstance(cmd, schedule.ForwardPass)]
    assert forwards == [0, 1, 2, 3, 0, 1, 2, 3]  # buffer ids repeat within a batch
    order = pds.schedule_order(4, 8)
    assert (order.num_ranks, order.num_stages, order.microbatches) == (4, 4, 8)
    assert [s.microbatch for s in order.ranks[0] if s.kind == "forward"] == list(range(8))
    assert [cell for cell in pds.schedule_csv(4, 8).splitlines()[0].split(",")][:5] == [
        "0F0", "0F1", "0F2", "0F3", "0B0"]
    # The last stage holds max(2, min(S - s, M)) = 2 buffers and runs F0 B0 F1 B1 ...
    assert pds.schedule_csv(4, 8).splitlines()[3].startswith("3F0,3B0,3F1,3B1")


def test_bad_shape_is_a_clear_error() -> None:
    import perseus

    with pytest.raises(perseus.InvalidInputError):
        pds.schedule_order(0, 4)


def test_instrument_needs_a_pipeline_engine() -> None:
    import perseus

    with pytest.raises(perseus.InvalidInputError, match="PipelineEngine"):
        pds.instrument(object(), RecordingHook([]))


# --------------------------------------------------------------------------------------------
# A real PipelineEngine (two processes, gloo, CPU)

STEPS = 2


def test_real_pipeline_engine_announces_trainschedule_order(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    # The first run on a machine may JIT-compile DeepSpeed's CPU shared-memory op (minutes)
    # unless it was built at install time (DS_BUILD_SHM_COMM=1).
    torchrun(__file__, "worker", str(tmp_path), env=env, timeout=900)
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for name, microbatches in (("m3", 3), ("m1", 1)):
            got = result[name]
            assert got["stage_id"] == rank
            assert got["seen"] == cells(2, microbatches, rank), (name, rank)  # the last step's
            assert got["metrics"]["iterations"] == STEPS
            assert got["metrics"]["mismatches"] == got["metrics"]["aborted_steps"] == 0
            # The planned clock, set only when it changes.
            clocks = [step["frequency_mhz"] for step in plan_for(2, microbatches, rank)] * STEPS
            assert got["applied"] == [mhz for i, mhz in enumerate(clocks)
                                      if i == 0 or mhz != clocks[i - 1]]
            assert len(got["losses"]) == STEPS and all(loss == loss for loss in got["losses"])
        # eval_batch: the highest clock (1410), nothing announced, no step.
        assert result["m3"]["unplanned"] == 1 and result["m3"]["after_eval_applied"][-1] == 1410
        assert result["m3"]["after_eval_seen"] == result["m3"]["seen"]
        assert result["m3"]["after_eval_iterations"] == STEPS
        # One stage, two data-parallel ranks: a wrong plan fails at the first forward on both.
        assert result["dp"]["error"] == (
            f"PlanMismatchError: rank {rank} announced forward 0 of stage 0 as computation 0 of "
            "the iteration, but the plan expects backward 0 of stage 0 there")
        assert result["dp"]["aborted_steps"] == 1 and result["dp"]["begins_again"] is True
        assert result["dp"]["seen"] == []  # the mismatch was the first computation
        assert result["removed"] is True


def _worker(out_dir: str) -> None:
    import deepspeed
    import torch
    from deepspeed.pipe import PipelineModule

    deepspeed.init_distributed(dist_backend="gloo")
    rank = int(os.environ["RANK"])
    torch.manual_seed(0)

    def engine_for(stages: int, microbatches: int) -> Any:
        layers = [torch.nn.Linear(8, 8) for _ in range(4)]
        module = PipelineModule(layers=layers, num_stages=stages, partition_method="uniform",
                                loss_fn=lambda out, y: ((out - y) ** 2).mean())
        config = {"train_micro_batch_size_per_gpu": 2,
                  "gradient_accumulation_steps": microbatches,
                  "optimizer": {"type": "SGD", "params": {"lr": 0.01}},
                  "steps_per_print": 10 ** 6}
        engine, _, _, _ = deepspeed.initialize(model=module, config=config,
                                               model_parameters=module.parameters())
        return engine

    def data() -> Any:
        while True:
            x = torch.randn(2, 8)
            yield x, x.flip(1)

    result: Dict[str, Any] = {}
    for name, microbatches in (("m3", 3), ("m1", 1)):
        engine = engine_for(2, microbatches)
        hook = RecordingHook(plan_for(2, microbatches, engine.stage_id), rank=rank)
        with pds.instrument(engine, hook):
            losses = [float(engine.train_batch(data_iter=data())) for _ in range(STEPS)]
            entry = {"stage_id": engine.stage_id, "seen": hook.seen,
                     "metrics": hook.metrics.as_dict(), "applied": list(hook.applied),
                     "losses": losses}
            if name == "m3":
                engine.eval_batch(data_iter=data())
                entry["unplanned"] = hook.unplanned
                entry["after_eval_seen"] = hook.seen
                entry["after_eval_applied"] = hook.applied
                entry["after_eval_iterations"] = hook.metrics.iterations
        result[name] = entry
    result["removed"] = "_INSTRUCTION_MAP" not in engine.__dict__

    engine = engine_for(1, 2)  # one stage, data parallel over both ranks
    wrong = plan_for(1, 2, 0)
    wrong[0], wrong[1] = wrong[1], wrong[0]
    hook = RecordingHook(wrong, rank=rank)
    instrumentation = pds.instrument(engine, hook)
    try:
        engine.train_batch(data_iter=data())
        error = "no error"
    except PlanMismatchError as e:
        error = f"PlanMismatchError: {e}"
    # The hook's step was aborted, not left open: a new one begins without complaint. (DeepSpeed's
    # own train_batch is not exception-safe: its train_batch timer stays started, so this engine
    # cannot train again.)
    hook.on_step_begin()
    instrumentation.remove()
    result["dp"] = {"error": error, "aborted_steps": hook.metrics.aborted_steps,
                    "begins_again": True, "seen": hook.seen}
    pathlib.Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    _worker(sys.argv[2])
