import pytest

import perseus
import perseus.torch as pt

PLAN = [
    {"kind": "forward", "microbatch": 0, "frequency_mhz": 1410},
    {"kind": "forward", "microbatch": 1, "frequency_mhz": 1410},
    {"kind": "backward", "microbatch": 0, "frequency_mhz": 1005},
    {"kind": "backward", "microbatch": 1, "frequency_mhz": 1200},
]


def run(hook, order):
    hook.on_step_begin()
    for kind, mb in order:
        hook.on_instruction_begin(kind, mb)
        hook.on_instruction_end(kind, mb)
    return hook.on_step_end()


def test_sets_planned_clocks_only_when_they_change():
    applied, syncs = [], []
    hook = pt.PerseusHook(plan=PLAN, set_frequency=applied.append,
                          synchronize=lambda: syncs.append(1))
    run(hook, [("forward", 0), ("forward", 1), ("backward", 0), ("backward", 1)])
    assert applied == [1410, 1005, 1200]
    # Synchronised at step begin/end and before each of the 3 clock changes, not per computation.
    assert len(syncs) == 2 + 3


def test_out_of_order_computation_is_a_clear_error():
    hook = pt.PerseusHook(plan=PLAN, set_frequency=lambda mhz: None, rank=3)
    hook.on_step_begin()
    hook.on_instruction_begin("forward", 0)
    hook.on_instruction_end("forward", 0)
    with pytest.raises(pt.PlanMismatchError) as error:
        hook.on_instruction_begin("backward", 0)
    assert str(error.value) == ("rank 3 announced backward 0 as computation 1 of the iteration, "
                                "but the plan expects forward 1 there")
    assert isinstance(error.value, ValueError)


def test_nesting_and_step_rules():
    hook = pt.PerseusHook(plan=PLAN)
    with pytest.raises(pt.PlanMismatchError):
        hook.on_instruction_begin("forward", 0)  # outside a step
    hook.on_step_begin()
    hook.on_instruction_begin("forward", 0)
    with pytest.raises(pt.PlanMismatchError):
        hook.on_instruction_begin("forward", 1)  # the previous one has not ended
    with pytest.raises(pt.PlanMismatchError):
        hook.on_instruction_end("forward", 1)
    hook.on_instruction_end("forward", 0)
    with pytest.raises(pt.PlanMismatchError) as error:
        hook.on_step_end()  # 1 of 4 computations
    assert "ran 1 computations" in str(error.value)
    with pytest.raises(perseus.InvalidInputError):
        pt.PerseusHook(plan=PLAN).on_instruction_begin("sideways", 0)


def test_measures_on_the_device(gpt3_profile):
    gpu = perseus.SimBackend(gpt3_profile)[0]
    hook = pt.PerseusHook(plan=PLAN, set_frequency=gpu.lock_sm_clock, device=gpu)
    hook.on_step_begin()
    for kind, mb in [("forward", 0), ("forward", 1), ("backward", 0), ("backward", 1)]:
        hook.on_instruction_begin(kind, mb)
        gpu.run(kind)
        hook.on_instruction_end(kind, mb)
    time_s, energy_j = hook.on_step_end()
    assert gpu.current_sm_clock() == 1200
    assert time_s > 0.2 and energy_j > 100


def test_pipelining_adapter_needs_torch_2_4():
    torch = pytest.importorskip("torch")
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        pytest.skip("torch.distributed.pipelining exists here")
    with pytest.raises(perseus.InvalidInputError) as error:
        pt.wrap_schedule(object(), pt.PerseusHook(plan=PLAN))
    assert "torch >= 2.4" in str(error.value)
