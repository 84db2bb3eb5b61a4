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

// Straggler response: the plan for a new deadline T' from a computed frontier
// (GPT-3, 8 x 96, 0.1 ms: 77,835 points over 1,536 computations). Lookup is
// the index of the lowest-energy point with time <= T'; PlanAt rebuilds that
// point's frequencies from the nearest checkpoint and the deltas after it.
const planner::Frontier& LargeFrontier() {
  static const planner::Frontier* frontier = [] {
    planner::PlannerOptions opt;
    opt.unit_time_s = 1e-4;
    opt.blocking_power_w = 83.64;
    auto problem = MakeProblem(LoadShippedProfile("gpt3-175b+a100_sxm_bf16.csv"), 96, opt);
    auto* f = new planner::Frontier(planner::SolveFrontier(problem).value());
    f->IndexForDeadline(0);  // build the deadline index outside the timing
    return f;
  }();
  return *frontier;
}

void BM_DeadlineLookup(benchmark::State& state) {
  const planner::Frontier& f = LargeFrontier();
  const double lo = f.points()[f.TMinIndex()].time_s, hi = f.points().front().time_s;
  double t = lo;
  for (auto _ : state) {
    t += (hi - lo) * 0.000123;
    if (t > hi) t = lo;
    benchmark::DoNotOptimize(f.IndexForDeadline(t));
  }
  state.counters["points"] = static_cast<double>(f.size());
}
BENCHMARK(BM_DeadlineLookup);

void BM_PlanForDeadline(benchmark::State& state) {
  const planner::Frontier& f = LargeFrontier();
  const double lo = f.points()[f.TMinIndex()].time_s, hi = f.points().front().time_s;
  double t = lo;
  for (auto _ : state) {
    t += (hi - lo) * 0.000123;
    if (t > hi) t = lo;
    auto plan = f.PlanAt(f.IndexForDeadline(t).value());
    benchmark::DoNotOptimize(plan.data());
  }
}
BENCHMARK(BM_PlanForDeadline)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace perseus::bench

BENCHMARK_MAIN();
