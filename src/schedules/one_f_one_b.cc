#include "perseus/schedules/one_f_one_b.h"

#include <algorithm>
#include <vector>

namespace perseus::schedules {

using planner::Computation;
using planner::Dag;
using planner::Instruction;

Result<Dag> MakeOneFOneB(int stages, int microbatches) {
  if (stages < 1) return Status::InvalidInput("--stages must be at least 1");
  if (microbatches < 1) return Status::InvalidInput("--microbatches must be at least 1");
  if (static_cast<long>(stages) * microbatches > 10'000'000) {
    return Status::InvalidInput("stages x microbatches is too large (limit 10,000,000)");
  }
  Dag dag;
  std::vector<std::vector<int>> fwd(stages, std::vector<int>(microbatches));
  std::vector<std::vector<int>> bwd(stages, std::vector<int>(microbatches));
  for (int s = 0; s < stages; ++s) {
    auto add = [&](Instruction instruction, int m) {
      int id = dag.AddComputation(Computation{s, s, instruction, m});
      (instruction == Instruction::kForward ? fwd : bwd)[s][m] = id;
    };
    const int warmup = std::min(stages - s - 1, microbatches);
    int next_f = 0, next_b = 0;
    for (; next_f < warmup; ++next_f) add(Instruction::kForward, next_f);
    while (next_f < microbatches) {
      add(Instruction::kForward, next_f++);
      add(Instruction::kBackward, next_b++);
    }
    while (next_b < microbatches) add(Instruction::kBackward, next_b++);
  }
  for (int s = 0; s + 1 < stages; ++s) {
    for (int m = 0; m < microbatches; ++m) {
      dag.AddDependency(fwd[s][m], fwd[s + 1][m]);
      dag.AddDependency(bwd[s + 1][m], bwd[s][m]);
    }
  }
  // The last stage's F(m) -> B(m) follows from its program order.
  Status status = dag.Finalize();
  if (!status.ok()) return status;
  return dag;
}

}  // namespace perseus::schedules
