// The planning problem: a DAG plus, for every computation, its Pareto-optimal
// measured options and the cost table the solver uses.
//
// Computations of the same (stage, instruction) share one OptionSet; an
// overlapped forward+backward (DualPipeV) has the set of its pair of
// (stage, instruction)s, derived from both: at every frequency both halves
// were measured at, time t_F + t_B and energy e_F + e_B (torch runs the two
// back to back at one clock). Options
// are Pareto-optimal in (real time, effective energy), sorted fastest first:
// time strictly increasing, effective energy strictly decreasing. A planned
// duration of d units maps to the slowest option whose quantised time fits,
// which is also the option of lowest effective energy that fits.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/cost_model.h"
#include "perseus/planner/dag.h"
#include "perseus/planner/profile.h"

namespace perseus::planner {

struct PlannerOptions {
  // Power drawn by one stage's GPUs while not computing, in watts (for a
  // tensor-parallel stage of 8 A100s: 8 x 83.64 W). Must be >= 0.
  double blocking_power_w = 0;
  // Time quantum tau in seconds (> 0).
  double unit_time_s = 0.001;
  CostModel cost_model = CostModel::kConvex;
  // Reference-compatible rounding: quantise times down (floor), as the
  // Python reference planner does, and report its plans unrepaired. Realized
  // plans may then be slower than the model promises (each computation off
  // the critical path may overrun its slot by up to one unit). For
  // comparisons only (bench/compare_reference); the default rounds up.
  bool round_down = false;
  // Bounds on the cost tables' size, checked before any is built (each time
  // unit of a computation's range costs about 40 bytes over the tables and
  // the sweep's step runs): the longest computation in units, and the units
  // of all option sets together. job::WorkLimits sets them for every job.
  int64_t max_units_per_computation = int64_t{1} << 20;
  int64_t max_total_units = int64_t{1} << 22;
};

struct Option {
  int frequency_mhz = 0;
  double time_s = 0;
  double energy_j = 0;
  double effective_j = 0;  // energy_j - blocking_power_w * time_s
  int64_t units = 0;       // ceil(time_s / unit_time_s), >= 1
};

// What an option set is for: one (stage, instruction) of the profile, or
// the two halves of an overlapped pair (overlap.stage >= 0).
struct OptionKey {
  ProfileKey key;
  ProfileKey overlap{-1, Instruction::kBackward};
  bool overlapped() const { return overlap.stage >= 0; }
  auto operator<=>(const OptionKey&) const = default;
};

struct OptionSet {
  OptionKey key;
  std::vector<Option> options;  // Pareto, fastest first
  Option highest_frequency;     // what "all-max" runs (may be off the Pareto set)
  CostTable cost;               // durations [options.front().units, options.back().units]
  // option_for_units[d - cost.min_units]: the option to run for a planned
  // duration of d units.
  std::vector<int> option_for_units;

  int OptionForUnits(int64_t d) const { return option_for_units[d - cost.min_units]; }
};

struct Problem {
  std::shared_ptr<const Dag> dag;
  PlannerOptions options;
  int num_gpus = 0;  // S: GPUs (pipeline ranks) that each draw blocking power when idle
  std::vector<OptionSet> option_sets;
  std::vector<int> set_of_node;  // node id -> index into option_sets

  const OptionSet& set(int node) const { return option_sets[set_of_node[node]]; }
  const Option& option(int node, int index) const { return set(node).options[index]; }
};

// Validates the inputs (every (stage, instruction) of the DAG present in the
// profile, both halves of every overlapped pair measured at one frequency at
// least, a positive unit time, non-negative blocking power) and builds the
// problem. Errors are kInvalidInput with a message naming what is missing.
Result<Problem> BuildProblem(std::shared_ptr<const Dag> dag, const Profile& profile,
                             const PlannerOptions& options);

}  // namespace perseus::planner
