"""A torchtitan 0.3 config module with Perseus on, as a user writes one:

    torchrun ... -m torchtitan.train --module torchtitan_configs --config llama3_debugmodel_perseus
"""

from __future__ import annotations

from typing import Any

import perseus.torchtitan


def llama3_debugmodel_perseus() -> Any:
    from torchtitan.models.llama3.config_registry import llama3_debugmodel

    import torchtitan_train  # the recording hook factory of the tests

    return perseus.torchtitan.enable(llama3_debugmodel(), torchtitan_train.make_hook)
