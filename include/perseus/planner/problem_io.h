// problem.json: the part of a planning problem a plan's realized figures need
// (each computation's measured options, the dependencies, blocking power),
// stored beside a frontier so that plans for new deadlines can be improved
// without the profile (show-plan, the coordinator after a restart).
//
//   {"format": "perseus-problem/1",
//    "blocking_power_w": 83.64,        per DAG GPU (a pipeline stage's GPUs together)
//    "gpus": 8,                        DAG GPUs (pipeline ranks)
//    "option_sets": [{"options": [[frequency_mhz, time_s, energy_j], ...]}, ...],
//                                      Pareto options, fastest first
//    "computations": [{"option_set": 0, "successors": [3, 9]}, ...]}
//                                      by computation id, as computations.csv
//
// A problem read back has no cost tables (the solver's); everything realized.h
// and improve.h use is there.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/dag.h"
#include "perseus/planner/problem.h"

namespace perseus::planner {

std::string ProblemToJson(const Problem& problem);

// `computations`: the DAG's computations by id (from computations.csv);
// `path` names the file in messages. kInvalidInput naming the field for any
// malformed or inconsistent content.
Result<std::shared_ptr<const Problem>> ParseProblemJson(
    std::string_view text, const std::string& path, const std::vector<Computation>& computations);

}  // namespace perseus::planner
