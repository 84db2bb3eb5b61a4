// Event-level simulation of one iteration of a plan: every computation runs
// on its GPU when its GPU is free and its inputs have arrived, with
// optional effects the planner does not model:
//   p2p_latency_s     added to every dependency between two GPUs;
//   switch_latency_s  a frequency change requested when a computation starts
//                     takes effect this long after: the computation runs at
//                     the previous frequency until then (its work done in
//                     proportion to time; at a frequency its stage has no
//                     Pareto measurement for, the nearest measured one);
//   noise_pct         every computation's time and energy are multiplied by
//                     1 + e, e ~ Normal(0, noise_pct / 100) clamped to >= -0.5
//                     (power unchanged), drawn with `seed`.
// With no latency and no noise the result equals EvaluatePlan exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/problem.h"
#include "perseus/planner/realized.h"

namespace perseus::emulator {

struct SimulationOptions {
  double p2p_latency_s = 0;
  double switch_latency_s = 0;
  double noise_pct = 0;
  uint64_t seed = 1;
};

struct TimelineEntry {
  int node = 0;
  double start_s = 0, end_s = 0;
  int frequency_mhz = 0;  // planned
  double energy_j = 0;
};

struct SimulationResult {
  planner::Figures figures;
  std::vector<TimelineEntry> timeline;  // by node id
};

Result<SimulationResult> Simulate(const planner::Problem& problem, const planner::Plan& plan,
                                  const SimulationOptions& options);

// CSV: gpu,computation,instruction,stage,microbatch,start,end,frequency,energy.
std::string TimelineCsv(const planner::Problem& problem, const SimulationResult& result);

}  // namespace perseus::emulator
