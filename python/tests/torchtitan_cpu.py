"""Lets torchtitan's trainer run on a machine without an accelerator (the test machines).

torchtitan (0.2.2 and 0.3.0) has no CPU device path: `torchtitan/tools/utils.py` picks
`_get_available_device_type() or "cuda"`, so without a GPU it picks "cuda" and the trainer's
first `torch.cuda.set_device` fails (trainer.py: AttributeError: module 'torch._C' has no
attribute '_cuda_setDevice'). Importing this module before torchtitan makes torchtitan see
device type "cpu" with a device module that has the few calls torchtitan makes on it
(set_device, current_device, device_count, get_device_name, get_device_properties,
memory_stats, reset_peak_memory_stats, empty_cache, synchronize). Everything else -- the
trainer, the model, the pipeline split and schedule, the dataloader, the loss and the
optimizer, the gloo process groups -- is torchtitan's and torch's own code.

Assets: torchtitan's wheels ship neither the test tokenizer nor the c4_test dataset
(they live in the source tree's tests/assets). `make_assets(root)` writes a word-level
tokenizer.json (+ tokenizer_config.json) and a local JSON-lines dataset that torchtitan's
HuggingFaceTokenizer and its c4_test loader (`datasets.load_dataset(path, split="train")`)
read offline.
"""

from __future__ import annotations

import json
import os
import random
import sys
import types
from typing import Any, Dict


def _total_memory() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


CPU_DEVICE_MODULE = types.SimpleNamespace(
    __name__="perseus_tests_cpu_device",
    is_available=lambda: True,
    set_device=lambda device: None,
    current_device=lambda: 0,
    device_count=lambda: 1,
    get_device_name=lambda device=None: "cpu",
    get_device_properties=lambda device=None: types.SimpleNamespace(total_memory=_total_memory()),
    memory_stats=lambda device=None: {},
    reset_peak_memory_stats=lambda device=None: None,
    empty_cache=lambda: None,
    synchronize=lambda device=None: None,
)


def use_cpu() -> None:
    """Makes torchtitan's device selection say "cpu". Call before anything imports torchtitan."""
    if any(name == "torchtitan" or name.startswith("torchtitan.") for name in sys.modules):
        import torchtitan.tools.utils as utils

        if utils.device_type != "cpu":
            raise RuntimeError("torchtitan was imported before torchtitan_cpu.use_cpu()")
        return
    import torch._utils as torch_utils

    available, device_module = (torch_utils._get_available_device_type,
                                torch_utils._get_device_module)
    torch_utils._get_available_device_type = lambda: "cpu"
    def cpu_device_module(device_type: str = "cpu") -> Any:
        return CPU_DEVICE_MODULE if device_type == "cpu" else device_module(device_type)

    torch_utils._get_device_module = cpu_device_module  # type: ignore[assignment]
    try:
        import torchtitan.tools.utils as utils  # binds device_type / device_module
    finally:
        torch_utils._get_available_device_type = available
        torch_utils._get_device_module = device_module
    if utils.device_type != "cpu":
        raise RuntimeError(f"torchtitan picked device type {utils.device_type!r}")


def make_assets(root: str, *, words: int = 300, documents: int = 200) -> Dict[str, str]:
    """A tokenizer folder and a c4_test-style dataset folder under `root`; returns their paths."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"<unk>": 0, "<|begin_of_text|>": 1, "<|end_of_text|>": 2}
    names = [f"w{i}" for i in range(words)]
    for name in names:
        vocab[name] = len(vocab)
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer_dir = os.path.join(root, "tokenizer")
    os.makedirs(tokenizer_dir, exist_ok=True)
    tokenizer.save(os.path.join(tokenizer_dir, "tokenizer.json"))
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                   "add_bos_token": True, "add_eos_token": True}, f)
    dataset_dir = os.path.join(root, "c4_test")
    os.makedirs(dataset_dir, exist_ok=True)
    rng = random.Random(0)
    with open(os.path.join(dataset_dir, "data.json"), "w") as f:
        for _ in range(documents):
            text = " ".join(rng.choice(names) for _ in range(rng.randint(20, 200)))
            f.write(json.dumps({"text": text}) + "\n")
    return {"tokenizer": tokenizer_dir, "dataset": dataset_dir}


if __name__ == "__main__":
    print(json.dumps(make_assets(sys.argv[1])))
