// A shipped profile's planning problem for tests: 1F1B, 8 stages, 1 ms units,
// the A100's blocking power (83.64 W).
#pragma once

#include <memory>
#include <string>

#include "perseus/planner/profile.h"
#include "src/planner/testing/random_profile.h"

namespace perseus::planner::testing {

// nullptr if the profile (a file name under data/profiles) cannot be read.
inline std::shared_ptr<const Problem> ShippedProblem(const std::string& name, int microbatches) {
  auto profile = ReadProfileCsv(std::string(PERSEUS_DATA_DIR) + "/profiles/" + name);
  if (!profile.ok()) return nullptr;
  PlannerOptions opt;
  opt.unit_time_s = 0.001;
  opt.blocking_power_w = 83.64;
  return MakeProblem(*profile, 8, microbatches, opt);
}

}  // namespace perseus::planner::testing
