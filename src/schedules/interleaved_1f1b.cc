// Interleaved 1F1B (Megatron-LM's virtual pipeline), following
// megatron/core/pipeline_parallel/schedules.py,
// forward_backward_pipelining_with_interleaving (microbatch group size S), and
// torch.distributed.pipelining's ScheduleInterleaved1F1B, which agree:
//
//   total = M * V virtual microbatches per rank
//   warmup = min((S - r - 1) * 2 + (V - 1) * S, total)
//   (Megatron-Core before 0.10 ran every forward first when M == S; 0.10 and
//   later, and torch, do not.)
//   forward k:  chunk (k mod S*V) div S,
//               microbatch (k div S*V) * S + k mod S
//   backward k: chunk V - 1 - (k mod S*V) div S, same microbatch formula
//   order: forwards 0..warmup-1; then forward k+warmup, backward k for
//   k = 0..total-warmup-1; then the remaining backwards.
//
// Chunk c on rank r is model stage c*S + r.
#include <algorithm>

#include "src/schedules/generators.h"

namespace perseus::schedules::internal {

using planner::Instruction;

RankOrders InterleavedOneFOneBOrders(int stages, int microbatches, int virtual_stages) {
  const int S = stages, V = virtual_stages;
  const int total = microbatches * V;
  auto chunk = [&](int k, bool forward) {
    int c = (k % (S * V)) / S;
    return forward ? c : V - 1 - c;
  };
  auto microbatch = [&](int k) { return (k / (S * V)) * S + k % S; };
  RankOrders orders(S);
  for (int r = 0; r < S; ++r) {
    const int warmup = std::min((S - r - 1) * 2 + (V - 1) * S, total);
    auto forward = [&](int k) {
      orders[r].push_back({chunk(k, true) * S + r, Instruction::kForward, microbatch(k)});
    };
    auto backward = [&](int k) {
      orders[r].push_back({chunk(k, false) * S + r, Instruction::kBackward, microbatch(k)});
    };
    for (int k = 0; k < warmup; ++k) forward(k);
    for (int k = 0; k < total - warmup; ++k) {
      forward(k + warmup);
      backward(k);
    }
    for (int k = total - warmup; k < total; ++k) backward(k);
  }
  return orders;
}

}  // namespace perseus::schedules::internal
