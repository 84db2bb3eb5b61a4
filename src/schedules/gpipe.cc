#include "src/schedules/generators.h"

namespace perseus::schedules::internal {

using planner::Instruction;

// GPipe: every forward, then every backward, both in microbatch order, as
// torch.distributed.pipelining's ScheduleGPipe runs them.
RankOrders GPipeOrders(int stages, int microbatches) {
  RankOrders orders(stages);
  for (int s = 0; s < stages; ++s) {
    for (int m = 0; m < microbatches; ++m) orders[s].push_back({s, Instruction::kForward, m});
    for (int m = 0; m < microbatches; ++m) orders[s].push_back({s, Instruction::kBackward, m});
  }
  return orders;
}

}  // namespace perseus::schedules::internal
