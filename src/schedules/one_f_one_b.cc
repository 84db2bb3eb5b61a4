#include "perseus/schedules/one_f_one_b.h"

#include <algorithm>

#include "src/schedules/generators.h"

namespace perseus::schedules {

using planner::Instruction;

namespace internal {

// DeepSpeed's TrainSchedule: stage s runs min(S-s-1, M) warm-up forwards,
// then alternates one forward and one backward, then the remaining backwards.
RankOrders OneFOneBOrders(int stages, int microbatches) {
  RankOrders orders(stages);
  for (int s = 0; s < stages; ++s) {
    auto& order = orders[s];
    const int warmup = std::min(stages - s - 1, microbatches);
    int next_f = 0, next_b = 0;
    for (; next_f < warmup; ++next_f) order.push_back({s, Instruction::kForward, next_f});
    while (next_f < microbatches) {
      order.push_back({s, Instruction::kForward, next_f++});
      order.push_back({s, Instruction::kBackward, next_b++});
    }
    while (next_b < microbatches) order.push_back({s, Instruction::kBackward, next_b++});
  }
  return orders;
}

}  // namespace internal

Result<planner::Dag> MakeOneFOneB(int stages, int microbatches) {
  return MakeScheduleDag(ScheduleKind::kOneFOneB, ScheduleShape{stages, microbatches, 1});
}

}  // namespace perseus::schedules
