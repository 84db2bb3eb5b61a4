// Cost of FrequencyController::Set on the calling (training) thread.
//   build/bin/gpu_benchmark
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>

#include "perseus/gpu/frequency_controller.h"

namespace {

using perseus::Status;
using perseus::gpu::ClockTarget;
using perseus::gpu::ControllerOptions;
using perseus::gpu::FrequencyController;

// A GPU whose clock calls take `call_us` microseconds (NVML's take tens to
// hundreds; the controller's worker pays that, not the caller).
class SlowTarget : public ClockTarget {
 public:
  explicit SlowTarget(int call_us) : call_us_(call_us) {}
  Status LockSmClock(int) override { return Wait(); }
  Status ResetSmClock() override { return Wait(); }
  std::string Describe() const override { return "benchmark target"; }

 private:
  Status Wait() {
    if (call_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(call_us_));
    return Status::Ok();
  }
  int call_us_;
};

ControllerOptions Options() {
  ControllerOptions options;
  options.reset_on_signals = false;
  return options;
}

// Back-to-back requests: the worker is mostly busy in the (slow) driver call,
// so most requests only replace the pending one.
void BM_SetBackToBack(benchmark::State& state) {
  SlowTarget target(static_cast<int>(state.range(0)));
  FrequencyController controller(target, Options());
  int mhz = 1005;
  for (auto _ : state) {
    controller.Set(mhz);
    mhz = mhz == 1005 ? 1200 : 1005;
  }
  (void)controller.Flush();
  state.counters["driver_calls"] = static_cast<double>(controller.driver_calls());
}
BENCHMARK(BM_SetBackToBack)->Arg(0)->Arg(100);

// The training-loop case: one request per computation, with the worker
// between polls (arg 1) or, after a long idle stretch, asleep (arg 0: it
// sleeps at once), when Set pays for waking it.
void BM_SetBetweenComputations(benchmark::State& state) {
  SlowTarget target(0);
  ControllerOptions options = Options();
  if (state.range(0) == 0) options.idle_sleep_after_ms = 0;
  FrequencyController controller(target, options);
  int mhz = 1005;
  for (auto _ : state) {
    (void)controller.Flush();
    std::this_thread::sleep_for(std::chrono::microseconds(300));  // a computation runs
    const auto start = std::chrono::steady_clock::now();
    controller.Set(mhz);
    const auto end = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
    mhz = mhz == 1005 ? 1200 : 1005;
  }
}
BENCHMARK(BM_SetBetweenComputations)->Arg(1)->Arg(0)->Iterations(10000)->UseManualTime();

// CPU the polling worker costs while requests keep coming (every 2 ms here).
void BM_PollingWorkerCpu(benchmark::State& state) {
  SlowTarget target(0);
  ControllerOptions options = Options();
  options.poll_interval_us = static_cast<int>(state.range(0));
  FrequencyController controller(target, options);
  for (auto _ : state) {
    const std::clock_t cpu0 = std::clock();
    const auto wall0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 500; ++i) {
      controller.Set(i % 2 == 0 ? 1005 : 1200);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const double cpu = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    state.counters["cpu_percent_of_a_core"] = 100.0 * cpu / wall;
  }
}
BENCHMARK(BM_PollingWorkerCpu)->Arg(100)->Arg(250)->Arg(1000)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
