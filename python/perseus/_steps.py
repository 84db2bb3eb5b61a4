"""What the framework integrations (perseus.deepspeed, perseus.megatron) share."""

from typing import Any


def abort_step(hook: Any) -> None:
    """Ends a step an exception interrupted without masking that exception.

    Uses the hook's `on_step_abort` where it has one (perseus.torch.PerseusHook),
    else `on_step_end`; a failure there is swallowed: the framework's own
    exception is the one to see."""
    abort = getattr(hook, "on_step_abort", None)
    try:
        if abort is not None:
            abort()
        else:
            hook.on_step_end()
    except Exception:  # noqa: BLE001
        pass
