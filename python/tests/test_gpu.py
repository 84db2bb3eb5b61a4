import perseus


def test_sim_gpu_and_controller(gpt3_profile):
    sim = perseus.SimBackend(gpt3_profile)
    assert len(sim) == 8
    gpu = sim[2]
    assert gpu.stage == 2
    assert gpu.supported_sm_clocks()[0] == 1410
    controller = perseus.FrequencyController(gpu, reset_on_signals=False)
    controller.set(1005)
    controller.flush()
    assert gpu.current_sm_clock() == 1005
    with perseus.measure(gpu) as m:
        gpu.run("backward")
    assert m.time_s > 0 and m.energy_j > 0
    controller.set(1000)  # not a clock of the profile
    try:
        controller.flush()
        raise AssertionError("expected InvalidInputError")
    except perseus.InvalidInputError as error:
        assert "1000 MHz" in str(error)
    history = controller.history()
    assert [e.requested_mhz for e in history] == [1005, 1000]
    del controller  # restores the default clock
    assert gpu.current_sm_clock() == 1410


def test_frequency_sweep_driven_from_python(gpt3_profile):
    sim = perseus.SimBackend(gpt3_profile)
    gpu = sim[0]
    sweep = perseus.FrequencySweep(gpu.supported_sm_clocks(), warmup=1, iterations=3)
    while not sweep.done:
        gpu.lock_sm_clock(sweep.frequency)
        for kind in ("forward", "backward"):
            with perseus.measure(gpu) as m:
                gpu.run(kind)
            sweep.record(kind, m.time_s, m.energy_j)
        sweep.end_iteration()
    gpu.reset_sm_clock()
    assert sweep.stopped_early_at == 1005  # noise-free: the profile's own stopping point
    rows = {(r.kind, r.frequency_mhz): r for r in sweep.rows}
    assert abs(rows[("forward", 1410)].time_s - 0.05016166687011708) < 1e-12


def test_open_backend_follows_the_environment_as_the_cpp_runtime(gpt3_profile, monkeypatch):
    monkeypatch.delenv("PERSEUS_GPUD_SOCKET", raising=False)
    monkeypatch.setenv("PERSEUS_GPU_BACKEND", "sim")
    monkeypatch.setenv("PERSEUS_SIM_PROFILE", gpt3_profile)
    runtime = perseus.open_backend()
    assert runtime.backend == "sim" and not runtime.through_gpud and len(runtime) == 8
    gpu = runtime[3]
    assert isinstance(gpu, perseus.SimGpu) and gpu.pci_bus_id == ""
    controller = perseus.FrequencyController(gpu, reset_on_signals=False)
    controller.set(1005)
    controller.flush()
    assert gpu.current_sm_clock() == 1005
    del controller
    assert gpu.current_sm_clock() == 1410

    monkeypatch.setenv("PERSEUS_GPUD_SOCKET", "/nonexistent/gpud.sock")
    try:
        perseus.open_backend()
        raise AssertionError("expected UnavailableError")
    except perseus.UnavailableError as error:
        assert "/nonexistent/gpud.sock" in str(error)
    monkeypatch.delenv("PERSEUS_GPUD_SOCKET")
    monkeypatch.setenv("PERSEUS_GPU_BACKEND", "bogus")
    try:
        perseus.open_backend()
        raise AssertionError("expected InvalidInputError")
    except perseus.InvalidInputError as error:
        assert "PERSEUS_GPU_BACKEND" in str(error)
    try:
        perseus.GpudBackend("")
        raise AssertionError("expected InvalidInputError")
    except perseus.InvalidInputError as error:
        assert "socket" in str(error)


def test_a_sweep_with_nothing_to_sweep_is_refused() -> None:
    import pytest

    for frequencies, kinds in (([], ["forward"]), ([1410, 1410], ["forward"]), ([1410], [])):
        with pytest.raises(perseus.InvalidInputError):
            perseus.FrequencySweep(frequencies, kinds)
