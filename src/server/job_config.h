// A job's configuration as POST /v1/jobs gives it, validated field by field.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "perseus/common/status.h"
#include "perseus/job/job.h"

namespace perseus::server {

struct JobConfig {
  std::string name;
  std::string schedule = "1f1b";  // a built-in name, or "csv" with schedule_csv
  // A torch.distributed.pipelining CSV (as --schedule-file reads); stages,
  // microbatches and virtual_stages are then the CSV's.
  std::string schedule_csv;
  int stages = 0, microbatches = 0, virtual_stages = 1, tp = 1, dp = 1;
  // Watts per GPU while it waits. Absent or null in the request: taken from the
  // blocking power the ranks measured with their profile (PUT .../profile).
  double blocking_power_w = 0;
  bool blocking_power_given = true;
  double unit_time_s = 0;  // 0: chosen from the profile (job::AutoUnitTime)
  std::string cost_model = "convex";
  double time_scale = 1, energy_scale = 1;
  // Automatic straggler detection from the iteration reports (dp > 1 only).
  bool straggler_detection = true;
  double straggler_threshold = 0.05;  // slow: > (1 + threshold) x the others' median
  int straggler_iterations = 3;       // K consecutive iterations declare, re-target, clear

  // Profile stages the planner needs (S, or S x V chunks cut from S).
  int ranks() const { return stages * tp * dp; }
  nlohmann::json ToJson() const;
  job::JobSpec ToSpec() const;
};

// The first member of `j` (an object) not among `names`, cut to 64
// characters, with "(known: a, b, ...)" in *known; nullopt if every member is
// one of them. Requests name only fields they know (a typo is a 400).
std::optional<std::string> UnknownField(const nlohmann::json& j,
                                        std::initializer_list<std::string_view> names,
                                        std::string* known);

// On failure, *field names the offending field.
Result<JobConfig> ParseJobConfig(const nlohmann::json& j, std::string* field);

}  // namespace perseus::server
