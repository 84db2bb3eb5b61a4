// Helpers for tests: random profiles and small problems.
#pragma once

#include <memory>
#include <random>

#include "perseus/planner/problem.h"
#include "perseus/planner/profile.h"
#include "perseus/planner/solver.h"
#include "perseus/schedules/one_f_one_b.h"

namespace perseus::planner::testing {

// A profile with `stages` stages, forward and backward, `options` frequencies
// each. Times fall with frequency; energies are random around a convex-ish
// trend, so Pareto filtering, non-convex points and ties are all exercised.
inline Profile RandomProfile(std::mt19937& rng, int stages, int options, double base_time = 3.0) {
  Profile profile;
  profile.source = "random";
  profile.num_stages = stages;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int s = 0; s < stages; ++s) {
    for (Instruction ins : {Instruction::kForward, Instruction::kBackward}) {
      double t = base_time * (0.6 + 0.8 * u(rng)) * (ins == Instruction::kBackward ? 1.8 : 1.0);
      double e = 10 * t * (0.8 + 0.4 * u(rng));
      std::vector<Measurement> rows;
      for (int k = 0; k < options; ++k) {
        int freq = 1500 - 100 * k;
        rows.push_back(Measurement{freq, t, e, k + 2});
        t *= 1.0 + 0.15 + 0.25 * u(rng);
        e *= 0.80 + 0.25 * u(rng);
      }
      profile.measurements[ProfileKey{s, ins}] = rows;
    }
  }
  return profile;
}

inline std::shared_ptr<const Problem> MakeProblem(const Profile& profile, int stages,
                                                  int microbatches, const PlannerOptions& opt) {
  auto dag = schedules::MakeOneFOneB(stages, microbatches);
  auto problem = BuildProblem(std::make_shared<Dag>(std::move(dag).value()), profile, opt);
  if (!problem.ok()) return nullptr;
  return std::make_shared<Problem>(std::move(problem).value());
}

// A random profile's 1F1B problem (unit 0.1 s) and its solved frontier.
struct SolvedCase {
  std::shared_ptr<const Problem> problem;
  Frontier frontier;
};
inline SolvedCase SolveRandomCase(unsigned seed, int stages, int microbatches, int options,
                                  double blocking_power_w) {
  std::mt19937 rng(seed);
  PlannerOptions opt;
  opt.unit_time_s = 0.1;
  opt.blocking_power_w = blocking_power_w;
  SolvedCase out;
  out.problem = MakeProblem(RandomProfile(rng, stages, options), stages, microbatches, opt);
  if (out.problem == nullptr) return out;
  auto frontier = SolveFrontier(out.problem);
  if (frontier.ok()) out.frontier = std::move(frontier).value();
  return out;
}

}  // namespace perseus::planner::testing
