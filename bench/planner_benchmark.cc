// Frontier solve time on the shipped GPT-3 175B A100 profile (1F1B, 8 stages).
//
//   build/bin/planner_benchmark
//
// Counters: frontier points, solve time per point, bytes of stored plans.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "perseus/planner/solver.h"

namespace perseus::bench {
namespace {

// args: microbatches, unit in microseconds, scaled (the paper's x10 time, x80
// energy, 8 x 83.64 W emulation setting) or not (one GPU's figures, 83.64 W),
// and the solver: fast (0) or the reference implementation (1).
void BM_SolveFrontier(benchmark::State& state) {
  const int microbatches = static_cast<int>(state.range(0));
  const bool scaled = state.range(2) != 0;
  planner::SolverOptions options;
  options.reference = state.range(3) != 0;
  planner::Profile profile = LoadShippedProfile("gpt3-175b+a100_sxm_bf16.csv");
  planner::PlannerOptions opt;
  opt.unit_time_s = static_cast<double>(state.range(1)) * 1e-6;
  opt.blocking_power_w = 83.64;
  if (scaled) {
    planner::ScaleProfile(&profile, 10, 80);
    opt.blocking_power_w = 8 * 83.64;
  }
  auto problem = MakeProblem(profile, microbatches, opt);
  size_t points = 0, bytes = 0;
  for (auto _ : state) {
    auto frontier = planner::SolveFrontier(problem, {}, options);
    if (!frontier.ok()) {
      state.SkipWithError(frontier.status().message().c_str());
      return;
    }
    points = frontier->size();
    bytes = frontier->PlanStorageBytes();
    benchmark::DoNotOptimize(points);
  }
  state.counters["points"] = static_cast<double>(points);
  state.counters["plan_bytes"] = static_cast<double>(bytes);
  state.counters["s_per_point"] = benchmark::Counter(
      static_cast<double>(points),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_SolveFrontier)
    ->ArgNames({"M", "unit_us", "scaled", "reference"})
    ->Args({12, 1000, 1, 0})  // perseus demo
    ->Args({12, 1000, 1, 1})
    ->Args({12, 1000, 0, 0})
    ->Args({24, 1000, 0, 0})
    ->Args({32, 1000, 0, 0})  // the Python reference planner: about 13 minutes
    ->Args({32, 1000, 0, 1})
    ->Args({96, 100, 0, 0})  // issue #8: under a minute
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

}  // namespace
}  // namespace perseus::bench

BENCHMARK_MAIN();
