"""perseus.torchtitan with torchtitan's own schedule builder, trainer and configs.

The schedule tests build each schedule the way torchtitan does (its builder, real
PipelineStage objects, one process per pipeline rank simulated with torch's fake process
group) and check that the integration wraps it and reads the order torch runs. The training
tests run torchtitan's trainer (llama3 debug model, 2 pipeline ranks, gloo on CPU) with Perseus
turned on by torchtitan's own flags and a strict PerseusHook on simulated clocks.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any, Dict, Iterator, List, Tuple

import pytest

# The project's environment has torchtitan (scripts/setup.sh: 0.2.2 in .venv,
# 0.3.0 in an overlay that CTest's python.test_torchtitan_0_3 puts first).
import torchtitan  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.distributed.pipelining import PipelineStage  # noqa: E402
from torch.distributed.pipelining import schedules as ts  # noqa: E402
from torch.distributed.pipelining._utils import generate_rank_to_stage_mapping  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402

import perseus  # noqa: E402
import perseus.torch as ptorch  # noqa: E402
import perseus.torchtitan as ptt  # noqa: E402
import torchtitan.distributed.pipeline_parallel as tt_pp  # noqa: E402


def test_the_torchtitan_under_test_is_the_one_expected() -> None:
    import importlib.metadata
    expected = os.environ.get("PERSEUS_EXPECT_TORCHTITAN")
    if expected:
        assert importlib.metadata.version("torchtitan") == expected, torchtitan.__file__

HERE = pathlib.Path(__file__).resolve().parent
TT03 = hasattr(tt_pp, "_build_pipeline_schedule")  # torchtitan 0.3 (else 0.2)
BUILDER = "_build_pipeline_schedule" if TT03 else "build_pipeline_schedule"

# (schedule name, pipeline ranks, microbatches)
SCHEDULES = [("1F1B", 4, 8), ("GPipe", 2, 4), ("Interleaved1F1B", 4, 8), ("LoopedBFS", 2, 4),
             ("InterleavedZeroBubble", 2, 4), ("ZBVZeroBubble", 4, 8), ("DualPipeV", 2, 4)]


@contextlib.contextmanager
def fake_rank(rank: int, world: int) -> Iterator[None]:
    dist.init_process_group("fake", rank=rank, world_size=world, store=FakeStore())
    try:
        yield
    finally:
        dist.destroy_process_group()


def _style(name: str) -> str:
    return "v" if ts.get_schedule_class(name) in (ts.ScheduleZBVZeroBubble,
                                                   ts.ScheduleDualPipeV) else "loop"


def _stages_per_rank(name: str) -> int:
    return 1 if issubclass(ts.get_schedule_class(name), ts.PipelineScheduleSingle) else 2


def _stage_indices(rank: int, ranks: int, name: str) -> Tuple[int, ...]:
    num_stages = ranks * _stages_per_rank(name)
    if TT03:  # torchtitan's own rank -> stages rule
        return tuple(tt_pp._get_pp_rank_to_stage_indices_mapping(rank, ranks, name, num_stages))
    return tuple(generate_rank_to_stage_mapping(ranks, num_stages, style=_style(name))[rank])


def _titan_loss(output: torch.Tensor, target: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    loss = output.sum()
    return (loss, None) if TT03 else loss  # 0.3's builder unpacks (loss, extra)


def _builder_args(name: str, ranks: int, microbatches: int, stages: List[PipelineStage],
                  csv_path: str = "", **parallelism: Any) -> Tuple[tuple, Dict[str, Any]]:
    """The arguments torchtitan's pipeline_llm gives its schedule builder."""
    fields = dict(pipeline_parallel_degree=ranks, pipeline_parallel_schedule=name,
                  pipeline_parallel_microbatch_size=1,
                  pipeline_parallel_schedule_csv=csv_path, **parallelism)
    if TT03:
        from torchtitan.config import ParallelismConfig

        return (), dict(parallelism=ParallelismConfig(**fields), local_batch_size=microbatches,
                        stages=stages, loss_fn=_titan_loss)
    from torchtitan.config import JobConfig

    job = JobConfig()
    for key, value in fields.items():
        setattr(job.parallelism, key, value)
    job.training.local_batch_size = microbatches
    return (job, stages, _titan_loss), {}


def _real_stages(rank: int, ranks: int, name: str) -> List[PipelineStage]:
    num_stages = ranks * _stages_per_rank(name)
    return [PipelineStage(torch.nn.Linear(4, 4), index, num_stages, torch.device("cpu"))
            for index in _stage_indices(rank, ranks, name)]


def _torch_compute_cells(schedule: Any, rank: int) -> List[str]:
    """This rank's compute actions as torch prints them, from what torch's runtime executes."""
    actions = (schedule.pipeline_order_with_comms
               if isinstance(schedule, ts._PipelineScheduleRuntime)
               else schedule.pipeline_order)[rank]
    compute = ("F", "B", "I", "W", "OVERLAP_F_B")
    return [str(a) for a in actions
            if a is not None and getattr(a.computation_type, "value", "") in compute]


def _cells(order: ptorch.ScheduleOrder, rank: int) -> List[str]:
    return [step.cell() for step in order.ranks[rank]]


class Factory:
    """A hook factory that records what it is told and returns a strict PerseusHook."""

    def __init__(self) -> None:
        self.infos: List[ptt.PipelineInfo] = []
        self.hooks: List[ptorch.PerseusHook] = []

    def __call__(self, info: ptt.PipelineInfo) -> ptorch.PerseusHook:
        self.infos.append(info)
        plan = info.order.plan(1410)[info.rank]
        hook = ptorch.PerseusHook(plan=plan, set_frequency=lambda mhz: None, strict=True,
                                  rank=info.rank)
        self.hooks.append(hook)
        return hook


def _no_threaded_overlap(name: str) -> Dict[str, Any]:
    # torchtitan 0.2 registers its threaded overlap_callback for DualPipeV unless told not to
    return ({"pipeline_parallel_expert_parallel_overlap": False}
            if name == "DualPipeV" and not TT03 else {})


@pytest.mark.parametrize("name,ranks,microbatches", SCHEDULES)
def test_builder_wraps_the_schedule_and_reads_the_order_torch_runs(
        name: str, ranks: int, microbatches: int) -> None:
    orders = []
    for rank in range(ranks):
        factory = Factory()
        with fake_rank(rank, ranks):
            stages = _real_stages(rank, ranks, name)
            args, kwargs = _builder_args(name, ranks, microbatches, stages,
                                         **_no_threaded_overlap(name))
            schedule = ptt.build_pipeline_schedule(*args, hook=factory, **kwargs)
            assert type(schedule) is ts.get_schedule_class(name)
            assert len(factory.infos) == 1
            info = factory.infos[0]
            assert info.schedule is schedule and info.rank == rank
            assert info.stages == _stage_indices(rank, ranks, name)
            assert info.microbatches == microbatches and info.schedule_name == name
            assert info.schedule_csv is None
            record = ptt.wrapped(schedule)
            assert record is not None and record.hook is factory.hooks[0]
            assert record.wrapper.schedule is schedule
            # wrapped: the stages' methods are the wrapper's, the schedule's step too
            for stage in stages:
                assert "forward_one_chunk" in stage.__dict__
            assert "step" in schedule.__dict__
            # the order is torch's (schedule_from_torch), and for the runtime schedules
            # exactly the compute actions torch's runtime executes on this rank
            assert info.order.csv() == ptorch.schedule_from_torch(schedule).csv()
            if isinstance(schedule, ts._PipelineScheduleRuntime):
                assert _cells(info.order, rank) == _torch_compute_cells(schedule, rank)
            assert info.order.num_ranks == ranks
            assert sum(len(steps) for steps in info.order.ranks) > 0
            orders.append(info.order.csv())
    assert len(set(orders)) == 1, "every rank reads the same whole-pipeline order"


@pytest.mark.skipif(TT03, reason="torchtitan 0.2's DualPipeV registers a threaded overlap_callback"
                    "; 0.3's builder does not register one")
def test_threaded_dualpipev_overlap_is_refused_with_the_flag_to_turn_off() -> None:
    with fake_rank(0, 2):
        args, kwargs = _builder_args("DualPipeV", 2, 4, _real_stages(0, 2, "DualPipeV"))
        with pytest.raises(perseus.InvalidInputError,
                           match="pipeline-parallel-expert-parallel-overlap"):
            ptt.build_pipeline_schedule(*args, hook=Factory(), **kwargs)


def test_a_factory_that_returns_none_leaves_the_schedule_alone() -> None:
    with fake_rank(0, 2):
        stages = _real_stages(0, 2, "1F1B")
        args, kwargs = _builder_args("1F1B", 2, 4, stages)
        schedule = ptt.build_pipeline_schedule(*args, hook=lambda info: None, **kwargs)
        assert ptt.wrapped(schedule) is None and "step" not in schedule.__dict__


def test_a_schedule_csv_is_loaded_by_torchtitan_and_is_the_order_read(tmp_path: Any) -> None:
    # the LoopedBFS order of 2 ranks x 2 stages, given to torchtitan as a CSV for a looped
    # (2 stages per rank) schedule name: torchtitan builds _PipelineScheduleRuntime + _load_csv
    with fake_rank(0, 2):
        args, kwargs = _builder_args("LoopedBFS", 2, 4, _real_stages(0, 2, "LoopedBFS"))
        text = ptorch.schedule_from_torch(ptt.build_pipeline_schedule(*args, **kwargs)).csv()
    path = tmp_path / "schedule.csv"
    path.write_text(text)
    for rank in range(2):
        factory = Factory()
        with fake_rank(rank, 2):
            stages = _real_stages(rank, 2, "Interleaved1F1B")
            args, kwargs = _builder_args("Interleaved1F1B", 2, 4, stages, csv_path=str(path))
            schedule = ptt.build_pipeline_schedule(*args, hook=factory, **kwargs)
            assert type(schedule) is ts._PipelineScheduleRuntime
            info = factory.infos[0]
            assert info.schedule_csv == str(path)
            assert info.order.csv() == text
            assert _cells(info.order, rank) == _torch_compute_cells(schedule, rank)
            assert _cells(info.order, rank) == next(
                row for i, row in enumerate(csv.reader(io.StringIO(text))) if i == rank)


def test_install_replaces_what_pipeline_llm_calls_and_uninstall_restores_it() -> None:
    original = getattr(tt_pp, BUILDER)
    factory = Factory()
    with ptt.install(factory) as installation:
        assert ptt.installed() is installation and installation.active
        assert getattr(tt_pp, BUILDER) is not original
        with pytest.raises(perseus.InvalidInputError, match="already installed"):
            ptt.install(Factory())
        with fake_rank(1, 2):
            args, kwargs = _builder_args("1F1B", 2, 4, _real_stages(1, 2, "1F1B"))
            # called the way pipeline_llm calls it: the module attribute, at call time
            schedule = getattr(tt_pp, BUILDER)(*args, **kwargs)
            assert ptt.wrapped(schedule) is not None
            assert factory.infos[0].rank == 1 and factory.infos[0].schedule is schedule
    assert getattr(tt_pp, BUILDER) is original and ptt.installed() is None
    assert not installation.active
    # build_pipeline_schedule always calls torchtitan's own builder, installed or not
    assert ptt._original_builder() is original


def test_wrap_pipelining_fn_wraps_the_schedule_the_function_returns() -> None:
    factory = Factory()

    def pipelining_fn(stages: List[PipelineStage], *, parallelism: Any = None,
                      job_config: Any = None) -> Tuple[Any, list, bool, bool]:
        args, kwargs = _builder_args("Interleaved1F1B", 2, 4, stages)
        return ptt._original_builder()(*args, **kwargs), [], True, False

    with fake_rank(0, 2):
        wrapped_fn = ptt.wrap_pipelining_fn(pipelining_fn, factory)
        assert wrapped_fn.__name__ == "pipelining_fn"
        schedule, parts, first, last = wrapped_fn(_real_stages(0, 2, "Interleaved1F1B"))
        assert ptt.wrapped(schedule) is not None and (parts, first, last) == ([], True, False)
        assert factory.infos[0].stages == (0, 2)
        with pytest.raises(perseus.InvalidInputError, match="already wrapped"):
            ptt.wrap_pipelining_fn(wrapped_fn, factory)


def test_hook_factory_from_string_reports_what_is_wrong() -> None:
    assert ptt.hook_factory_from_string("torchtitan_cpu:make_assets") is not None
    for bad in ("no_colon", "torchtitan_cpu:missing", "no_such_module_xyz:f"):
        with pytest.raises(perseus.InvalidInputError):
            ptt.hook_factory_from_string(bad)


# ---------------------------------------------------------------------------------------------
# schedule_order: what the planner plans, from a torchtitan config


def _config(name: str, ranks: int, microbatches: int, csv_path: str = "") -> Any:
    if TT03:
        from torchtitan.models.llama3.config_registry import llama3_debugmodel

        config = llama3_debugmodel()
        parallelism = config.parallelism
    else:
        from torchtitan.config import JobConfig

        config = JobConfig()
        parallelism = config.parallelism
    parallelism.pipeline_parallel_degree = ranks
    parallelism.pipeline_parallel_schedule = name
    parallelism.pipeline_parallel_schedule_csv = csv_path
    parallelism.pipeline_parallel_microbatch_size = 2
    config.training.local_batch_size = 2 * microbatches
    return config


@pytest.mark.parametrize("name,ranks,microbatches",
                         [("1F1B", 4, 8), ("Interleaved1F1B", 2, 4), ("ZBVZeroBubble", 2, 4)])
def test_schedule_order_of_a_config_is_what_each_rank_builds(
        name: str, ranks: int, microbatches: int) -> None:
    order = ptt.schedule_order(_config(name, ranks, microbatches))
    assert order.microbatches == microbatches and order.num_ranks == ranks
    assert not dist.is_initialized()
    for rank in range(ranks):
        factory = Factory()
        with fake_rank(rank, ranks):
            args, kwargs = _builder_args(name, ranks, microbatches,
                                         _real_stages(rank, ranks, name))
            ptt.build_pipeline_schedule(*args, hook=factory, **kwargs)
        assert factory.infos[0].order.csv() == order.csv()
    assert ptt.schedule_csv(_config(name, ranks, microbatches)) == order.csv()


def test_schedule_order_reads_the_config_csv(tmp_path: Any) -> None:
    text = ptt.schedule_csv(_config("LoopedBFS", 2, 4))
    path = tmp_path / "bfs.csv"
    path.write_text(text)
    order = ptt.schedule_order(_config("Interleaved1F1B", 2, 4, csv_path=str(path)))
    assert order.csv() == text and order.name == "_PipelineScheduleRuntime"
    assert order.csv() != ptt.schedule_csv(_config("Interleaved1F1B", 2, 4))


def test_schedule_order_refuses_to_run_inside_a_process_group() -> None:
    with fake_rank(0, 2):
        with pytest.raises(perseus.InvalidInputError, match="process group"):
            ptt.schedule_order(_config("1F1B", 2, 4))


@pytest.mark.skipif(not TT03, reason="enable() edits a torchtitan 0.3 Trainer.Config")
def test_enable_wraps_the_model_specs_pipelining_fn() -> None:
    config = _config("1F1B", 2, 4)
    before = config.model_spec
    factory = Factory()
    assert ptt.enable(config, factory) is config
    assert config.model_spec is not before and before.pipelining_fn is tt_pp.pipeline_llm
    assert config.model_spec.pipelining_fn.__wrapped__ is tt_pp.pipeline_llm
    assert config.model_spec.pipelining_fn.__perseus_hook__ is factory


# ---------------------------------------------------------------------------------------------
# A real torchtitan training run (torchrun, 2 processes, gloo on CPU)

# torchtitan 0.3 trains through schedule.step(arg_mbs=, kwarg_mbs=, target_mbs=, ...), an API
# of torch after 2.13 (torch 2.13's step(*args, target=, ...) splits whole batches).
STEP_TAKES_MICROBATCHES = "arg_mbs" in inspect.signature(ts.PipelineScheduleSingle.step).parameters
CAN_TRAIN = not TT03 or STEP_TAKES_MICROBATCHES
CANNOT_TRAIN = (f"torchtitan {torchtitan.__version__} calls schedule.step(arg_mbs=..., "
                f"kwarg_mbs=..., target_mbs=...) (trainer.py pp_forward_backward_step), which "
                f"torch {torch.__version__}'s step() does not take: torch raises "
                "'ValueError: Expecting 4 arg_mbs but got 1' (schedules.py _check_inputs)")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: Any) -> Dict[str, str]:
    sys.path.insert(0, str(HERE))
    import torchtitan_cpu

    return torchtitan_cpu.make_assets(str(tmp_path_factory.mktemp("torchtitan_assets")))


def _train(out: pathlib.Path, assets: Dict[str, str], schedule: str, *extra: str,
           steps: int = 2, build_only: bool = False,
           perseus_flags: bool = True) -> Tuple[List[Dict[str, Any]], str]:
    """Runs torchtitan_train.py on 2 ranks; `extra` flags come last (tyro: the last wins)."""
    out.mkdir(parents=True, exist_ok=True)
    flags = ["--parallelism.pipeline_parallel_degree", "2",
             "--parallelism.pipeline_parallel_schedule", schedule,
             "--parallelism.pipeline_parallel_microbatch_size", "1",
             "--training.local_batch_size", "4", "--training.seq_len", "32",
             "--training.steps", str(steps), "--metrics.log_freq", "1"]
    if TT03:
        flags += ["--module", "llama3", "--config", "llama3_debugmodel",
                  "--training.disable_cuda_graphs", "--validator.no-enable",
                  "--checkpoint.no-enable", "--hf_assets_path", assets["tokenizer"],
                  "--dataloader.dataset_path", assets["dataset"], "--dump_folder", str(out)]
        if perseus_flags:
            flags += ["--override.imports", "perseus.torchtitan.perseus_hook"]
    else:
        flags += ["--model.name", "llama3", "--model.flavor", "debugmodel",
                  "--model.hf_assets_path", assets["tokenizer"],
                  "--training.dataset", "c4_test", "--training.dataset_path", assets["dataset"],
                  "--job.dump_folder", str(out)]
        if perseus_flags:
            flags += ["--experimental.custom_import", "perseus.torchtitan"]
    env = dict(os.environ, PERSEUS_TT_OUT=str(out), HF_DATASETS_OFFLINE="1",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PERSEUS_TORCHTITAN_HOOK="torchtitan_train:make_hook" if perseus_flags else "",
               PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(HERE / "torchtitan_train.py"),
               *(["--perseus-build-only"] if build_only else []), *flags, *extra]
    run = subprocess.run(command, env=env, cwd=str(out), capture_output=True, text=True,
                         timeout=240)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-6000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)], log


def _check_every_computation_announced_in_plan_order(records: List[Dict[str, Any]],
                                                     steps: int) -> Dict[str, Any]:
    csvs = {record["info"]["order_csv"] for record in records}
    assert len(csvs) == 1, "both ranks plan the same whole-pipeline order"
    for rank, record in enumerate(records):
        info = record["info"]
        assert info["rank"] == rank
        expected = [[s["kind"], s["microbatch"], s["stage"]] for s in info["plan"]]
        clocks = [s["frequency_mhz"] for s in info["plan"]]
        assert len(record["steps"]) == steps
        for step in record["steps"]:
            assert step["announced"] == expected
            assert step["frequencies"] == clocks  # every planned clock set, in order
    return records[0]


@pytest.mark.skipif(not CAN_TRAIN, reason=CANNOT_TRAIN)
@pytest.mark.parametrize("schedule,extra", [
    ("1F1B", ()), ("Interleaved1F1B", ()), ("ZBVZeroBubble", ()),
    # torch's runtime runs each OVERLAP_F_B's forward then backward (no threaded callback)
    ("DualPipeV", () if TT03 else ("--parallelism.no-pipeline-parallel-expert-parallel-overlap",)),
])
def test_torchtitan_trains_with_perseus_on_by_flags(tmp_path: Any, assets: Dict[str, str],
                                                    schedule: str, extra: Tuple[str, ...]) -> None:
    records, log = _train(tmp_path, assets, schedule, *extra, steps=2)
    _check_every_computation_announced_in_plan_order(records, steps=2)
    text = re.sub(r"\x1b\[[0-9;]*m", "", log)
    losses = [float(m.group(1)) for m in re.finditer(r"step:\s*\d+\s+loss:\s*(-?[0-9.]+)", text)]
    real = [loss for loss in losses if loss > 0]  # ranks without the last stage log -1
    assert len(real) == 2 and all(loss < 100 for loss in real), text[-3000:]
    assert records[0]["info"]["schedule_class"] == ts.get_schedule_class(schedule).__name__


@pytest.mark.parametrize("route", ["flags", "config_module"] if TT03 else ["flags"])
def test_torchtitan_builds_its_trainer_with_perseus_on(tmp_path: Any, assets: Dict[str, str],
                                                       route: str) -> None:
    """What runs with every torchtitan/torch pair: the trainer's model split, schedule and
    the wrap (no training step). "flags": the flags of _train; "config_module" (0.3): no
    Perseus flag, torchtitan's --module/--config select a config function calling enable()."""
    extra: Tuple[str, ...] = ()
    if route == "config_module":
        extra = ("--module", "torchtitan_configs", "--config", "llama3_debugmodel_perseus")
    records, _ = _train(tmp_path, assets, "Interleaved1F1B", *extra, build_only=True,
                        perseus_flags=route == "flags")
    for rank, record in enumerate(records):
        assert record["trainer_built"] and record["info"]["rank"] == rank
        assert record["info"]["schedule_class"] == "ScheduleInterleaved1F1B"
        assert record["info"]["stages"] == [rank, rank + 2]
        assert record["info"]["microbatches"] == 4 and record["steps"] == []
