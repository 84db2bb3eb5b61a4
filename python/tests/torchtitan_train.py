"""One rank of a real torchtitan training run with Perseus turned on by flags (run by torchrun).

    PERSEUS_TT_OUT=DIR torchrun --nproc_per_node 2 torchtitan_train.py [--perseus-build-only] \
        <torchtitan's own flags, e.g. --parallelism.pipeline_parallel_degree 2 ...>

Perseus comes in the way a torchtitan user turns it on: PERSEUS_TORCHTITAN_HOOK names this
module's `make_hook`, and the flags include `--experimental.custom_import perseus.torchtitan`
(torchtitan 0.2) or `--override.imports perseus.torchtitan.perseus_hook` (0.3). The hook is a
real perseus.torch.PerseusHook (strict: a computation out of the plan's order raises) on
simulated clocks: the plan gives computation i of a rank's iteration the clock 1000 + i MHz, and
`set_frequency` only records. Each rank writes DIR/rank<R>.json after every step: what the
factory was told, every computation announced and every clock set, per step.

`--perseus-build-only` builds torchtitan's Trainer (model, pipeline split, schedule, wrap) and
stops before training, for torchtitan/torch pairs whose training step cannot run.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if __name__ == "__main__":
    # PERSEUS_TORCHTITAN_HOOK says "torchtitan_train:make_hook": the same module, not a copy.
    sys.modules.setdefault("torchtitan_train", sys.modules["__main__"])

import torchtitan_cpu  # noqa: E402

from perseus.torch import PerseusHook  # noqa: E402  (not perseus.torchtitan: torchtitan imports it)

BASE_MHZ = 1000
_RECORD: Dict[str, Any] = {"info": None, "steps": [], "trainer_built": False}


def _out_path() -> str:
    return os.path.join(os.environ["PERSEUS_TT_OUT"], f"rank{os.environ.get('RANK', '0')}.json")


def _save() -> None:
    with open(_out_path() + ".tmp", "w") as f:
        json.dump(_RECORD, f)
    os.replace(_out_path() + ".tmp", _out_path())


class RecordingHook(PerseusHook):
    """A PerseusHook that also records what it was told, per step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._step: Optional[Dict[str, List[Any]]] = None

    def on_step_begin(self) -> None:
        self._step = {"announced": [], "frequencies": []}
        super().on_step_begin()

    def on_instruction_begin(self, kind: str, microbatch: int,
                             stage: Optional[int] = None) -> int:
        assert self._step is not None
        self._step["announced"].append([kind, microbatch, stage])
        return super().on_instruction_begin(kind, microbatch, stage)

    def on_step_end(self, energy_j: Optional[float] = None) -> Any:
        result = super().on_step_end(energy_j)
        _RECORD["steps"].append(self._step)
        _save()
        return result

    def set_frequency(self, mhz: int) -> None:
        assert self._step is not None
        self._step["frequencies"].append(mhz)


def make_hook(info: Any) -> RecordingHook:
    """The hook factory PERSEUS_TORCHTITAN_HOOK names."""
    plan = info.order.plan(lambda rank, step: 0)[info.rank]
    for i, step in enumerate(plan):
        step["frequency_mhz"] = BASE_MHZ + i
    holder: Dict[str, RecordingHook] = {}
    hook = RecordingHook(plan=plan, set_frequency=lambda mhz: holder["hook"].set_frequency(mhz),
                         strict=True, rank=info.rank)
    holder["hook"] = hook
    _RECORD["info"] = {"rank": info.rank, "stages": list(info.stages),
                       "microbatches": info.microbatches, "schedule_name": info.schedule_name,
                       "schedule_csv": info.schedule_csv, "schedule_class":
                       type(info.schedule).__name__, "order_csv": info.order.csv(),
                       "plan": plan}
    _save()
    return hook


def main() -> None:
    build_only = "--perseus-build-only" in sys.argv
    sys.argv = [a for a in sys.argv if a != "--perseus-build-only"]
    os.environ.setdefault("PERSEUS_TORCHTITAN_HOOK", "torchtitan_train:make_hook")
    torchtitan_cpu.use_cpu()
    import torch
    import torchtitan.train as train

    trainer_class = getattr(train, "Trainer", None)
    if not build_only:
        if trainer_class is not None and "trainer_class" in train.main.__code__.co_varnames:
            train.main(trainer_class)  # torchtitan 0.2
        else:
            train.main()  # torchtitan 0.3
        return
    from torchtitan.config import ConfigManager

    config = ConfigManager().parse_args()
    if hasattr(config, "build"):
        trainer = config.build()
    else:
        assert trainer_class is not None, "torchtitan 0.2 has train.Trainer"
        trainer = trainer_class(config)
    _RECORD["trainer_built"] = True
    _save()
    trainer.close()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
