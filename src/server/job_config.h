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
  // What is planned: the one job specification the CLI and Python plan too
  // (the server holds the profile, and a schedule CSV as schedule_csv, as
  // text: profile_path and schedule_file stay empty). schedule is a built-in
  // name, or "csv" with schedule_csv, whose shape then gives stages,
  // microbatches and virtual_stages. blocking_power_w: watts per GPU while it
  // waits; absent or null in the request, taken from the blocking power the
  // ranks measured with their profile (PUT .../profile). unit_time_s 0:
  // chosen from the profile (job::AutoUnitTime).
  job::JobSpec spec;
  bool blocking_power_given = true;
  // Automatic straggler detection from the iteration reports (dp > 1 only).
  bool straggler_detection = true;
  double straggler_threshold = 0.05;  // slow: > (1 + threshold) x the others' median
  int straggler_iterations = 3;       // K consecutive iterations declare, re-target, clear

  int ranks() const { return spec.stages * spec.tp * spec.dp; }
  nlohmann::json ToJson() const;
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
