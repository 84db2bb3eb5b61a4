// ZB-H1, the first handcrafted zero-bubble schedule of Qi et al., "Zero Bubble
// Pipeline Parallelism" (ICLR 2024, section 3.1 and figure 3). The backward is
// split into the input gradient I (on the critical path: the previous stage
// waits for it) and the weight gradient W (needed only by the optimizer step).
// ZB-H1 runs 1F1B with I in place of B and defers W passes into the bubbles,
// keeping the peak memory of 1F1B: a microbatch holds its activations until
// its W, and no rank may hold more than S microbatches (stage 0's 1F1B peak).
//
// Our reading of it, per rank r (0-based) of S:
//   warm-up: min(S - r - 1, M) forwards (as 1F1B);
//   steady:  one F, one I (oldest), then the oldest pending W if more than r
//            W passes are pending;
//   cool-down: the remaining I passes, each followed by a W when more than r
//            are pending; then every remaining W.
// So rank 0 runs each W right after its I, and the last rank defers S - 1 of
// them into the tail bubble that 1F1B leaves there.
#include <algorithm>

#include "src/schedules/generators.h"

namespace perseus::schedules::internal {

using planner::Instruction;

RankOrders ZeroBubbleH1Orders(int stages, int microbatches) {
  RankOrders orders(stages);
  for (int r = 0; r < stages; ++r) {
    auto& order = orders[r];
    int next_f = 0, next_i = 0, next_w = 0;
    auto input_then_maybe_weight = [&] {
      order.push_back({r, Instruction::kBackwardInput, next_i++});
      if (next_i - next_w > r) order.push_back({r, Instruction::kBackwardWeight, next_w++});
    };
    const int warmup = std::min(stages - r - 1, microbatches);
    for (; next_f < warmup; ++next_f) order.push_back({r, Instruction::kForward, next_f});
    while (next_f < microbatches) {
      order.push_back({r, Instruction::kForward, next_f++});
      input_then_maybe_weight();
    }
    while (next_i < microbatches) input_then_maybe_weight();
    while (next_w < microbatches) order.push_back({r, Instruction::kBackwardWeight, next_w++});
  }
  return orders;
}

}  // namespace perseus::schedules::internal
