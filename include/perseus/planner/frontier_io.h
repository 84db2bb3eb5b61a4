// Writing a frontier to a directory and reading plans back.
//
// Layout of DIR:
//   frontier.csv      time,energy,model_time,model_energy   (realized first; solver
//                     order: slowest first; row k is point k)
//   computations.csv  id,gpu,stage,instruction,microbatch,order   (order = position
//                     in its GPU's execution order); a schedule with overlapped
//                     forward+backward computations (DualPipeV) adds the columns
//                     overlap_stage,overlap_instruction,overlap_microbatch (the
//                     backward half; empty for other computations)
//   plans.csv         point,computation,frequency   point 0 lists every computation;
//                     point k > 0 lists only the computations whose frequency differs
//                     from point k-1, so large frontiers stay small on disk.
//   problem.json      each computation's measured options and dependencies, and the
//                     blocking power (problem_io.h): with it, plans for deadlines between
//                     the points are improved by the discrete local search (improve.h).
//                     Optional when reading (directories written before it existed).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/improve.h"

namespace perseus::planner {

// The three files' contents.
struct FrontierFiles {
  std::string frontier_csv, computations_csv, plans_csv;
  std::string problem_json;  // may be empty: no improvement past the points
};
FrontierFiles FrontierToFiles(const Frontier& frontier);
Status WriteFrontierDir(const Frontier& frontier, const std::string& dir);

struct StoredComputation {
  int id = 0, gpu = 0, stage = 0, microbatch = 0, order = 0;
  Instruction instruction = Instruction::kForward;
  Part overlap;  // the backward half of an overlapped forward+backward
  bool overlapped() const { return overlap.stage >= 0; }
};

// A plan read back from a frontier directory.
struct StoredPlan {
  size_t point = 0;  // the frontier point (improved plans: the one the search started from)
  // Realized time and energy of the plan; model figures: the point's.
  FrontierPoint figures;
  bool improved = false;  // by the discrete local search (needs problem.json)
  int64_t moves = 0;      // the search's accepted moves
  std::vector<StoredComputation> computations;
  std::vector<int> frequency_mhz;  // per computation id
};

// A frontier read back from its files: the points, the computations, and
// every point's plan as frequencies (without the planning problem).
class StoredFrontier {
 public:
  // `source` names the files in messages (e.g. a directory).
  static Result<StoredFrontier> Parse(const FrontierFiles& files, const std::string& source);
  static Result<StoredFrontier> ReadDir(const std::string& dir);

  const std::vector<FrontierPoint>& points() const { return points_; }
  const std::vector<StoredComputation>& computations() const { return computations_; }
  // The lowest-energy point whose realized time is <= deadline_s.
  std::optional<size_t> IndexForDeadline(double deadline_s) const;
  // The lowest-energy point among the fastest ones.
  size_t TMinIndex() const;
  // Frequency of every computation (by id) at point k: O(changes up to k).
  std::vector<int> FrequenciesAt(size_t point) const;
  // The problem read from problem.json; null without one.
  const std::shared_ptr<const Problem>& problem() const { return problem_; }
  // The plan for deadline_s: with a problem, the lowest-objective point for
  // it improved by PlanForDeadline (improve.h); without one, the point as
  // stored. nullopt if no point meets the deadline. `computations` is left
  // empty (see computations()).
  std::optional<StoredPlan> PlanForDeadline(double deadline_s,
                                            const ImproveOptions& options = {}) const;

 private:
  std::vector<FrontierPoint> points_;
  std::vector<StoredComputation> computations_;
  // Plan changes in point order: point k's are [change_begin_[k], change_begin_[k+1]).
  std::vector<size_t> change_begin_;
  std::vector<std::pair<int, int>> changes_;  // (computation, frequency)
  std::shared_ptr<const Problem> problem_;
};

// Reads DIR and returns the plan for deadline_s: StoredFrontier::PlanForDeadline
// (own-time objective). kInvalidInput (file:line: problem) for a malformed
// directory; kNotFound if no point meets the deadline.
Result<StoredPlan> ReadPlanForDeadline(const std::string& dir, double deadline_s);

}  // namespace perseus::planner
