// Shared by the benchmarks: planning problems on the shipped profiles.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "perseus/planner/problem.h"
#include "perseus/planner/profile.h"
#include "perseus/schedules/one_f_one_b.h"

namespace perseus::bench {

inline planner::Profile LoadShippedProfile(const std::string& name) {
  auto profile = planner::ReadProfileCsv(std::string(PERSEUS_DATA_DIR) + "/profiles/" + name);
  if (!profile.ok()) {
    std::fprintf(stderr, "%s\n", profile.status().message().c_str());
    std::exit(1);
  }
  return std::move(profile).value();
}

// 1F1B over the profile's stages with `microbatches` microbatches.
inline std::shared_ptr<const planner::Problem> MakeProblem(const planner::Profile& profile,
                                                           int microbatches,
                                                           const planner::PlannerOptions& opt) {
  auto dag = schedules::MakeOneFOneB(profile.num_stages, microbatches);
  auto problem =
      planner::BuildProblem(std::make_shared<planner::Dag>(std::move(dag).value()), profile, opt);
  if (!problem.ok()) {
    std::fprintf(stderr, "%s\n", problem.status().message().c_str());
    std::exit(1);
  }
  return std::make_shared<planner::Problem>(std::move(problem).value());
}

}  // namespace perseus::bench
