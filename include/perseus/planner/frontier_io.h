// Writing a frontier to a directory and reading plans back.
//
// Layout of DIR:
//   frontier.csv      time,energy,model_time,model_energy   (realized first; solver
//                     order: slowest first; row k is point k)
//   computations.csv  id,gpu,stage,instruction,microbatch,order   (order = position
//                     in its GPU's execution order)
//   plans.csv         point,computation,frequency   point 0 lists every computation;
//                     point k > 0 lists only the computations whose frequency differs
//                     from point k-1, so large frontiers stay small on disk.
#pragma once

#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"

namespace perseus::planner {

Status WriteFrontierDir(const Frontier& frontier, const std::string& dir);

struct StoredComputation {
  int id = 0, gpu = 0, stage = 0, microbatch = 0, order = 0;
  Instruction instruction = Instruction::kForward;
};

// A plan read back from a frontier directory.
struct StoredPlan {
  size_t point = 0;
  FrontierPoint figures;
  std::vector<StoredComputation> computations;
  std::vector<int> frequency_mhz;  // per computation id
};

// Reads DIR and returns the plan for deadline_s: the lowest-energy point whose
// realized time is <= deadline_s. kInvalidInput (file:line: problem) for a
// malformed directory; kNotFound if no point meets the deadline.
Result<StoredPlan> ReadPlanForDeadline(const std::string& dir, double deadline_s);

}  // namespace perseus::planner
