// Cluster emulation (the paper's evaluation model): D data-parallel
// pipelines, one of which may be a straggler, and the energy of one training
// iteration under each frequency-planning method.
//
// Model. Let T_min be the realized time of a method's fastest plan. With a
// straggler slowdown X, the straggler pipeline runs that plan X times slower
// (time and energy x X) and the iteration takes T' = X * T_min for everyone:
// every other pipeline runs the method's plan for deadline T' and then waits
// at blocking power until T'. Job energy = straggler + (D - 1) others. X = 1
// means no straggler (every pipeline runs the fastest plan).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/realized.h"

namespace perseus::emulator {

enum class Method { kAllMax, kPerseus, kEnvPipe, kZeusGlobal, kZeusPerStage };
// Every method, in the order outputs list them: the one registry from which
// names, defaults, parsing and error messages come.
inline constexpr Method kMethods[] = {Method::kAllMax, Method::kPerseus, Method::kEnvPipe,
                                      Method::kZeusGlobal, Method::kZeusPerStage};
// "all-max", "perseus", "envpipe", "zeus-global", "zeus-per-stage"
std::string_view MethodName(Method method);
// Every method's name, in kMethods' order (a default list of names).
std::vector<std::string> AllMethodNames();
// "all-max, perseus, envpipe, zeus-global, zeus-per-stage" (for messages).
std::string MethodNames();
// Approximations a method makes with the data a profile has ("" if none).
std::string_view MethodApproximation(Method method);
// The non-empty approximations of `methods`, for output.
std::vector<std::string> MethodApproximations(const std::vector<Method>& methods);
bool ParseMethodName(std::string_view text, Method* out);
// Names to methods; an unknown name is an InvalidInput naming `field`, the
// name and the methods there are.
Result<std::vector<Method>> ParseMethodNames(const std::vector<std::string>& names,
                                             std::string_view field = "methods");

// EnvPipe (Choi et al., ATC'23) as its paper describes it: the last stage and
// every stage's first forward and last backward run at the highest frequency;
// every other computation starts at its lowest frequency; then, while the
// iteration is slower than all-max, the computations on a critical path that
// run at the lowest frequency among critical ones are raised one step. Steps
// are the problem's Pareto options (the frequencies a planner would ever
// pick). It stops when the all-max time is met or no critical computation
// can be raised (its known failure to terminate is a loop there), and after
// at most sum(options) rounds in any case.
struct EnvPipeResult {
  planner::Plan plan;
  planner::Figures figures;
  int rounds = 0;
  bool met_all_max_time = false;
};
EnvPipeResult RunEnvPipe(const planner::Problem& problem);

// Zeus (You et al., NSDI'23) baselines. zeus-global: one GPU power limit for
// every GPU, the one with the lowest job energy under the slowdown; the
// profile has no power-limit data, so a power limit is approximated by a
// global SM frequency cap (every computation at the highest Pareto frequency
// not above it). zeus-per-stage: one frequency per GPU, the lowest at which
// the GPU's forwards take no longer than the slowest GPU's forwards at the
// highest frequency (balancing the stages); backwards run at the same one.
std::vector<planner::Plan> ZeusGlobalPlans(const planner::Problem& problem);
planner::Plan ZeusPerStagePlan(const planner::Problem& problem);

struct MethodResult {
  double time_s = 0;      // job iteration time T'
  double energy_j = 0;    // job energy per iteration
  double saving_pct = 0;  // against all-max at the same slowdown
  // Figures of the plan the non-straggler pipelines run (one pipeline).
  planner::Figures plan;
};

struct EmulationRow {
  double slowdown = 1;
  std::vector<MethodResult> methods;  // in the order of EmulationOptions::methods
};

struct EmulationOptions {
  int pipelines = 1;  // D
  std::vector<double> slowdowns = {1.0};
  std::vector<Method> methods = {std::begin(kMethods), std::end(kMethods)};
};

// The frontier's problem gives the pipeline, blocking power and all-max.
// If `fastest` is given, it receives each method's fastest plan's figures
// (in the order of options.methods), which the rows are computed from.
Result<std::vector<EmulationRow>> Emulate(const planner::Frontier& frontier,
                                          const EmulationOptions& options,
                                          std::vector<planner::Figures>* fastest = nullptr);

// Parses "1.2", "1.0:1.5:0.05" (start:stop:step, stop included) into values.
Result<std::vector<double>> ParseSlowdowns(const std::vector<std::string>& specs);

}  // namespace perseus::emulator
