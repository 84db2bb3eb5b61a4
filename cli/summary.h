// The planning summary: one JSON object for machines, a short table for humans.
// Energies are for the whole job: one pipeline's figures times the
// data-parallel degree (every pipeline runs the same plan).
#pragma once

#include <string>

#include "cli/job.h"
#include "nlohmann/json.hpp"

namespace perseus::cli {

nlohmann::json SummaryJson(const job::JobSpec& spec, const PlannedJob& planned);
std::string SummaryTable(const job::JobSpec& spec, const PlannedJob& planned);

}  // namespace perseus::cli
