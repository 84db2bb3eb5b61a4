"""Perseus for torchtitan: a planned SM clock per pipeline computation.

torchtitan builds its pipeline schedule (a torch.distributed.pipelining schedule) in
`torchtitan.distributed.pipeline_parallel`: `pipeline_llm` splits the model into stages and
calls the module's schedule builder, `build_pipeline_schedule(job_config, stages, loss_fn)`
in torchtitan 0.2 and `_build_pipeline_schedule(parallelism=, local_batch_size=, stages=,
loss_fn=)` in 0.3; the trainer then calls `schedule.step(...)` once per iteration. This
module builds the schedule with torchtitan's own builder and wraps it with
`perseus.torch.wrap_schedule`, so every forward/backward announces itself to a
`perseus.torch.PerseusHook`:

    def make_hook(info: perseus.torchtitan.PipelineInfo) -> perseus.torch.PerseusHook:
        plan = client_or_frontier_plan_for(info.rank)     # or PerseusHook(client=...)
        return perseus.torch.PerseusHook(plan=plan, set_frequency=controller.set,
                                         strict=False, rank=info.rank)

Ways in, from the least to the most hands-off:

- `build_pipeline_schedule(..., hook=make_hook)`: torchtitan's builder, same arguments,
  then the wrap (for code that calls the builder itself).
- `enable(config, make_hook)` (torchtitan 0.3): wraps `config.model_spec.pipelining_fn`, so
  whatever pipelining function the model has (pipeline_llm, pipeline_vlm, ...) gets its
  schedule wrapped. Put it in a config function and select it with torchtitan's own flags,
  `--module my_configs --config llama3_8b_perseus`.
- `install(make_hook)`: replaces the builder attribute that `pipeline_llm` looks up at call
  time (`torchtitan.distributed.pipeline_parallel.build_pipeline_schedule` in 0.2,
  `._build_pipeline_schedule` in 0.3) until `uninstall()`; an unmodified trainer picks it up.
- Flags only: set `PERSEUS_TORCHTITAN_HOOK=my_pkg.my_module:make_hook` and pass
  `--experimental.custom_import perseus.torchtitan` (0.2; importing this module with the
  variable set installs the hook factory) or `--override.imports
  perseus.torchtitan.perseus_hook` (0.3; the override, which leaves the config unchanged,
  installs it; `'perseus.torchtitan.perseus_hook={"factory": "my_pkg.my_module:make_hook"}'`
  names the factory without the variable).

`schedule_order(config)` gives the planner the schedule a torchtitan config will run (every
rank's computations, `.csv()` for `perseus plan --schedule-file`): it builds the schedule
with torchtitan's own builder on stand-in stages, in this process, without running it, and
reads it with `perseus.torch.schedule_from_torch`. A `parallelism.pipeline_parallel_schedule_csv`
is loaded by torchtitan's builder (`_load_csv`) like in training, so the order is the CSV's.

torchtitan 0.2's DualPipeV registers `overlap_callback` for OVERLAP_F_B (when
`parallelism.pipeline_parallel_expert_parallel_overlap`, the default, is on); it runs each
overlapped backward in a second thread while the forward runs, and a hook cannot give two
computations running at once one clock each, so the wrap refuses that schedule with an
error that names the flag to turn off.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import math
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Tuple, Union

from . import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from .torch import PerseusHook, ScheduleOrder, ScheduleWrapper

__all__ = ["ENV_HOOK", "HookFactory", "Installation", "PipelineInfo", "Wrapped",
           "build_pipeline_schedule", "enable", "hook_factory_from_string", "install",
           "installed", "schedule_csv", "schedule_order", "wrap", "wrap_pipelining_fn",
           "wrapped"]

#: The environment variable naming a hook factory as "package.module:function".
ENV_HOOK = "PERSEUS_TORCHTITAN_HOOK"


@dataclass(frozen=True)
class PipelineInfo:
    """What a hook factory learns about the schedule torchtitan built on this process."""

    schedule: Any  # the torch.distributed.pipelining schedule
    order: "ScheduleOrder"  # every rank's computations in run order (schedule_from_torch)
    rank: int  # this process's pipeline rank
    stages: Tuple[int, ...]  # the model stages (chunks) on this rank
    microbatches: int
    schedule_name: str  # parallelism.pipeline_parallel_schedule
    schedule_csv: Optional[str]  # parallelism.pipeline_parallel_schedule_csv, when set


#: Makes the hook for one process's schedule; None leaves the schedule unwrapped.
HookFactory = Callable[[PipelineInfo], Optional["PerseusHook"]]
HookOrFactory = Union["PerseusHook", HookFactory]


@dataclass(frozen=True)
class Wrapped:
    """A schedule this module wrapped: what the factory was told, its hook and wrapper."""

    info: PipelineInfo
    hook: "PerseusHook"
    wrapper: "ScheduleWrapper"


_WRAPPED: "weakref.WeakKeyDictionary[Any, Wrapped]" = weakref.WeakKeyDictionary()


def wrapped(schedule: Any) -> Optional[Wrapped]:
    """How this module wrapped `schedule`, or None if it did not."""
    try:
        return _WRAPPED.get(schedule)
    except TypeError:  # not weak-referenceable: never wrapped here
        return None


# ---------------------------------------------------------------------------------------------
# torchtitan's pipeline module and its schedule builder


_BUILDER_NAMES = ("_build_pipeline_schedule", "build_pipeline_schedule")  # 0.3, 0.2
_ORIGINAL_ATTR = "__perseus_original__"


def _pipeline_module() -> Any:
    try:
        return importlib.import_module("torchtitan.distributed.pipeline_parallel")
    except ImportError as error:
        raise InvalidInputError(
            "perseus.torchtitan needs torchtitan (pip install torchtitan; tested with 0.2.2 "
            f"and 0.3.0): {error}") from error


def _builder_name(module: Any) -> str:
    for name in _BUILDER_NAMES:
        if callable(getattr(module, name, None)):
            return name
    raise InvalidInputError(
        f"{module.__name__} has neither of {_BUILDER_NAMES}: this torchtitan builds its "
        "pipeline schedule some other way (perseus.torchtitan knows 0.2 and 0.3)")


def _original_builder() -> Callable[..., Any]:
    """torchtitan's own schedule builder (not an installed replacement)."""
    module = _pipeline_module()
    builder = getattr(module, _builder_name(module))
    return getattr(builder, _ORIGINAL_ATTR, builder)


def _find_parallelism(values: Iterable[Any]) -> Any:
    """The ParallelismConfig among builder / pipelining-function arguments (0.3 passes it,
    0.2 passes a JobConfig holding it)."""
    for value in values:
        if hasattr(value, "pipeline_parallel_schedule"):
            return value
        inner = getattr(value, "parallelism", None)
        if inner is not None and hasattr(inner, "pipeline_parallel_schedule"):
            return inner
    return None


def _schedule_rank_and_stages(schedule: Any) -> Tuple[int, Tuple[int, ...]]:
    from torch.distributed.pipelining import schedules as ts

    if isinstance(schedule, ts.PipelineScheduleSingle):
        return int(schedule._stage.group_rank), (int(schedule._stage.stage_index),)
    if isinstance(schedule, ts.PipelineScheduleMulti):
        return int(schedule.rank), tuple(int(s.stage_index) for s in schedule._stages)
    raise InvalidInputError(f"{type(schedule).__name__} is not a torch.distributed.pipelining "
                            "schedule")


def _refuse_threaded_overlap(schedule: Any) -> None:
    functions = getattr(schedule, "_comp_type_to_function_map", None) or {}
    for ctype, function in functions.items():
        if getattr(ctype, "value", ctype) == "OVERLAP_F_B":
            raise InvalidInputError(
                f"{type(schedule).__name__} runs OVERLAP_F_B through a registered custom "
                f"function ({getattr(function, '__module__', '?')}."
                f"{getattr(function, '__name__', function)}); torchtitan's overlap_callback "
                "runs the backward in a second thread while the forward runs, and one clock "
                "cannot be planned for two computations at once. Turn it off with "
                "--parallelism.no-pipeline-parallel-expert-parallel-overlap "
                "(parallelism.pipeline_parallel_expert_parallel_overlap = false); torch's "
                "runtime then runs each overlap's forward and backward one after the other")


def _is_hook(value: Any) -> bool:
    return all(hasattr(value, name) for name in
               ("on_step_begin", "on_instruction_begin", "on_instruction_end", "on_step_end"))


def wrap(schedule: Any, hook: HookOrFactory, *, parallelism: Any = None) -> Optional[Wrapped]:
    """Wraps a schedule torchtitan built so it announces its computations to a hook.

    `hook` is a PerseusHook, or a HookFactory called with this process's PipelineInfo (it
    may return None: the schedule stays as it is). `parallelism` (torchtitan's
    ParallelismConfig) fills in the schedule name and CSV of the PipelineInfo. Wrapping an
    already wrapped schedule returns the existing wrap."""
    from . import torch as perseus_torch

    existing = wrapped(schedule)
    if existing is not None:
        return existing
    _refuse_threaded_overlap(schedule)
    rank, stages = _schedule_rank_and_stages(schedule)
    order = perseus_torch.schedule_from_torch(schedule)
    csv_path = getattr(parallelism, "pipeline_parallel_schedule_csv", None) or None
    info = PipelineInfo(
        schedule=schedule, order=order, rank=rank, stages=stages,
        microbatches=int(schedule._n_microbatches),
        schedule_name=str(getattr(parallelism, "pipeline_parallel_schedule", "")
                          or type(schedule).__name__),
        schedule_csv=csv_path)
    made: Any = hook if _is_hook(hook) else hook(info)  # type: ignore[operator]
    if made is None:
        return None
    if not _is_hook(made):
        raise InvalidInputError(f"the hook factory returned {made!r}, not a PerseusHook "
                                "(or None)")
    the_hook: "PerseusHook" = made
    wrapper = perseus_torch.wrap_schedule(schedule, the_hook)
    result = Wrapped(info, the_hook, wrapper)
    _WRAPPED[schedule] = result
    return result


def build_pipeline_schedule(*args: Any, hook: Optional[HookOrFactory] = None,
                            **kwargs: Any) -> Any:
    """torchtitan's own schedule builder with its own arguments, then `wrap(schedule, hook)`.

    torchtitan 0.3: `build_pipeline_schedule(parallelism=..., local_batch_size=...,
    stages=..., loss_fn=..., hook=make_hook)`; torchtitan 0.2:
    `build_pipeline_schedule(job_config, stages, loss_fn, hook=make_hook)`. Returns the
    schedule (wrapped unless `hook` is None or the factory returned None)."""
    builder = _original_builder()
    schedule = builder(*args, **kwargs)
    if hook is not None:
        wrap(schedule, hook, parallelism=_find_parallelism([*args, *kwargs.values()]))
    return schedule


def wrap_pipelining_fn(pipelining_fn: Callable[..., Any],
                       hook: HookOrFactory) -> Callable[..., Any]:
    """A torchtitan pipelining function (ModelSpec/TrainSpec.pipelining_fn, e.g. pipeline_llm)
    whose schedule (the first item it returns) gets wrapped with `hook`."""
    if getattr(pipelining_fn, "__perseus_hook__", None) is not None:
        raise InvalidInputError("this pipelining function is already wrapped by Perseus")

    @functools.wraps(pipelining_fn)
    def perseus_pipelining_fn(*args: Any, **kwargs: Any) -> Any:
        result = pipelining_fn(*args, **kwargs)
        wrap(result[0], hook, parallelism=_find_parallelism([*args, *kwargs.values()]))
        return result

    perseus_pipelining_fn.__perseus_hook__ = hook  # type: ignore[attr-defined]
    return perseus_pipelining_fn


def enable(config: Any, hook: HookOrFactory) -> Any:
    """Turns Perseus on in a torchtitan 0.3 trainer config (Trainer.Config); returns it.

    Replaces `config.model_spec` by a copy whose pipelining_fn wraps the schedule it builds.
    Use it in a config function (torchtitan's `--module pkg.mod --config fn`):

        def llama3_8b_perseus() -> Trainer.Config:
            return perseus.torchtitan.enable(llama3_8b(), make_hook)
    """
    spec = getattr(config, "model_spec", None)
    if spec is None:
        raise InvalidInputError(
            "enable() takes a torchtitan 0.3 Trainer.Config with its model_spec set; for "
            "torchtitan 0.2 (JobConfig) use install() or --experimental.custom_import")
    if spec.pipelining_fn is None:
        raise InvalidInputError(f"model {spec.name} {spec.flavor} has no pipelining function "
                                "(torchtitan cannot pipeline it)")
    config.model_spec = dataclasses.replace(
        spec, pipelining_fn=wrap_pipelining_fn(spec.pipelining_fn, hook))
    return config


# ---------------------------------------------------------------------------------------------
# install: torchtitan's pipeline_llm looks its builder up at call time


class Installation:
    """A hook factory installed in torchtitan's pipeline module (see `install`)."""

    def __init__(self, module: Any, name: str, original: Callable[..., Any],
                 hook: HookOrFactory) -> None:
        self.module = module
        self.name = name
        self.original = original
        self.hook = hook

    @property
    def active(self) -> bool:
        return _INSTALLED.get("current") is self

    def uninstall(self) -> None:
        """Puts torchtitan's own builder back (no-op when already done)."""
        if self.active:
            setattr(self.module, self.name, self.original)
            _INSTALLED.pop("current", None)

    def __enter__(self) -> "Installation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()


_INSTALLED: Dict[str, Installation] = {}


def installed() -> Optional[Installation]:
    """The current installation, if any."""
    return _INSTALLED.get("current")


def install(hook: HookOrFactory) -> Installation:
    """Makes every schedule torchtitan's pipeline_llm builds (from now until `uninstall()`)
    announce its computations to the hook (a PerseusHook or a HookFactory).

    Replaces `torchtitan.distributed.pipeline_parallel.build_pipeline_schedule` (0.2) or
    `._build_pipeline_schedule` (0.3), the attribute pipeline_llm (and so pipeline_vlm)
    calls; code that imported the builder by name before keeps the original. Raises if
    another installation is active."""
    if installed() is not None:
        raise InvalidInputError("a Perseus hook is already installed in torchtitan; "
                                "uninstall() it first")
    module = _pipeline_module()
    name = _builder_name(module)
    original = getattr(module, name)

    @functools.wraps(original)
    def perseus_build_pipeline_schedule(*args: Any, **kwargs: Any) -> Any:
        schedule = original(*args, **kwargs)
        wrap(schedule, hook, parallelism=_find_parallelism([*args, *kwargs.values()]))
        return schedule

    setattr(perseus_build_pipeline_schedule, _ORIGINAL_ATTR, original)
    installation = Installation(module, name, original, hook)
    setattr(module, name, perseus_build_pipeline_schedule)
    _INSTALLED["current"] = installation
    return installation


def hook_factory_from_string(spec: str) -> HookFactory:
    """The hook factory "package.module:function" names (imported now)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInputError(f"hook factory {spec!r}: expected 'package.module:function'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise InvalidInputError(f"hook factory {spec!r} cannot be loaded: {error}") from error
    if not callable(factory):
        raise InvalidInputError(f"hook factory {spec!r} is not callable")
    return factory


def _install_from(spec: Optional[str]) -> Optional[Installation]:
    if not spec:
        return None
    current = installed()
    if current is not None and getattr(current, "spec", None) == spec:
        return current
    installation = install(hook_factory_from_string(spec))
    installation.spec = spec  # type: ignore[attr-defined]
    return installation


# torchtitan 0.2: --experimental.custom_import perseus.torchtitan imports this module in
# Trainer.__init__, before the model is pipelined; with PERSEUS_TORCHTITAN_HOOK set, that
# import installs the factory it names.
if os.environ.get(ENV_HOOK) and importlib.util.find_spec("torchtitan") is not None:
    _install_from(os.environ[ENV_HOOK])


def _register_override() -> None:
    """torchtitan 0.3: `--override.imports perseus.torchtitan.perseus_hook` (kwargs: factory)."""
    try:
        from torchtitan.config.override import _REGISTRY, override
        from torchtitan.tools.profiler import Profiler
    except ImportError:
        return
    if f"{__name__}.perseus_hook" in _REGISTRY:
        return

    @override(target=Profiler.Config, fqns=["profiler"],
              description="Perseus: planned SM clock per pipeline computation (the profiler "
                          "config is returned unchanged; the override installs the hook)")
    def perseus_hook(cfg: Any, factory: Optional[str] = None) -> Any:
        spec = factory or os.environ.get(ENV_HOOK)
        if not spec:
            raise InvalidInputError(
                "perseus.torchtitan.perseus_hook needs a hook factory: "
                "'perseus.torchtitan.perseus_hook={\"factory\": \"pkg.module:function\"}' or "
                f"{ENV_HOOK}=pkg.module:function")
        _install_from(spec)
        return cfg

    globals()["perseus_hook"] = perseus_hook


if importlib.util.find_spec("torchtitan") is not None:
    try:
        _register_override()
    except Exception:  # noqa: BLE001 - an unknown torchtitan must not break the import
        pass


# ---------------------------------------------------------------------------------------------
# The order the planner should plan


@dataclass(frozen=True)
class _Settings:
    parallelism: Any
    local_batch_size: int
    builder_args: Callable[[list, Callable[..., Any]], Tuple[tuple, dict]]
    num_stages: int


def _settings(config: Any) -> _Settings:
    """Pipeline settings of a torchtitan 0.3 Trainer.Config or 0.2 JobConfig, and the number
    of model stages torchtitan's pipeline_llm makes for them."""
    from torch.distributed.pipelining.schedules import PipelineScheduleSingle, get_schedule_class

    parallelism = config.parallelism
    local_batch_size = int(config.training.local_batch_size)
    pp_degree = int(parallelism.pipeline_parallel_degree)
    if pp_degree < 1:
        raise InvalidInputError(f"pipeline_parallel_degree is {pp_degree}")
    module = _pipeline_module()
    if hasattr(module, "_get_pipeline_metadata"):  # 0.3: torchtitan's own computation
        from torchtitan.distributed import ParallelDims

        world = pp_degree
        for degree in (parallelism.data_parallel_replicate_degree,
                       parallelism.context_parallel_degree,
                       parallelism.tensor_parallel_degree):
            world *= max(int(degree), 1)
        if int(parallelism.data_parallel_shard_degree) > 0:
            world *= int(parallelism.data_parallel_shard_degree)
        dims = ParallelDims.from_config(parallelism, world)
        if config.model_spec is None:
            raise InvalidInputError("the config has no model_spec")
        num_stages = int(module._get_pipeline_metadata(dims, parallelism,
                                                       config.model_spec.model)[0])

        def args_03(stages: list, loss_fn: Callable[..., Any]) -> Tuple[tuple, dict]:
            return (), {"parallelism": parallelism, "local_batch_size": local_batch_size,
                        "stages": stages, "loss_fn": loss_fn}
        return _Settings(parallelism, local_batch_size, args_03, num_stages)

    # 0.2: pipeline_llm computes it inline; the same rule.
    single = issubclass(get_schedule_class(parallelism.pipeline_parallel_schedule),
                        PipelineScheduleSingle)
    layers_per_stage = parallelism.pipeline_parallel_layers_per_stage
    if layers_per_stage is None:
        num_stages = pp_degree * (1 if single else 2)
    else:
        from torchtitan.protocols.train_spec import get_train_spec

        spec = get_train_spec(config.model.name)
        n_layers = int(spec.model_args[config.model.flavor].n_layers)
        num_stages = math.ceil((n_layers + parallelism.pipeline_parallel_first_stage_less_layers
                                + parallelism.pipeline_parallel_last_stage_less_layers)
                               / layers_per_stage)
        if num_stages % pp_degree:
            raise InvalidInputError(f"{num_stages} model stages do not divide among "
                                    f"{pp_degree} pipeline ranks")

    def args_02(stages: list, loss_fn: Callable[..., Any]) -> Tuple[tuple, dict]:
        return (config, stages, loss_fn), {}
    return _Settings(parallelism, local_batch_size, args_02, num_stages)


def schedule_order(config: Any) -> "ScheduleOrder":
    """Every rank's computations, in run order, of the schedule this torchtitan config
    trains with (0.3 Trainer.Config or 0.2 JobConfig): schedule name or
    pipeline_parallel_schedule_csv, pipeline degree, local batch size / microbatch size,
    layers per stage.

    Builds rank 0's schedule with torchtitan's builder on stand-in stages (torch.nn.Identity
    in real PipelineStage objects) over an in-process fake process group, reads it with
    perseus.torch.schedule_from_torch and tears the group down. Needs a process without a
    default process group (a planning process, not a training rank: there, a HookFactory's
    PipelineInfo.order is the same thing)."""
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage
    from torch.distributed.pipelining._utils import generate_rank_to_stage_mapping
    from torch.distributed.pipelining.schedules import (ScheduleDualPipeV,
                                                        ScheduleZBVZeroBubble,
                                                        get_schedule_class)
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from . import torch as perseus_torch

    if dist.is_initialized():
        raise InvalidInputError(
            "schedule_order builds the schedule over its own fake process group and needs a "
            "process without one; in a training rank use the PipelineInfo.order a hook "
            "factory gets")
    settings = _settings(config)
    pp_degree = int(settings.parallelism.pipeline_parallel_degree)
    style = ("v" if get_schedule_class(settings.parallelism.pipeline_parallel_schedule)
             in (ScheduleZBVZeroBubble, ScheduleDualPipeV) else "loop")
    stage_indices = generate_rank_to_stage_mapping(pp_degree, settings.num_stages,
                                                   style=style)[0]
    dist.init_process_group("fake", rank=0, world_size=pp_degree, store=FakeStore())
    try:
        stages = [PipelineStage(torch.nn.Identity(), index, settings.num_stages,
                                torch.device("cpu")) for index in stage_indices]

        def loss_fn(*args: Any, **kwargs: Any) -> Any:  # never called: nothing runs
            raise AssertionError("schedule_order does not run the schedule")

        args, kwargs = settings.builder_args(stages, loss_fn)
        schedule = _original_builder()(*args, **kwargs)
        return perseus_torch.schedule_from_torch(schedule)
    finally:
        dist.destroy_process_group()


def schedule_csv(config: Any) -> str:
    """`schedule_order(config).csv()`: what `perseus plan --schedule-file` reads."""
    return schedule_order(config).csv()

