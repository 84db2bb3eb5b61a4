// Pipeline schedules as DAG generators.
//
// A schedule is first a list of actions per GPU (pipeline rank) in execution
// order: (model stage, instruction, microbatch). For interleaved schedules the
// model stage is the model chunk index (chunk c on rank s is model stage
// c*S + s). BuildScheduleDag then derives the dependencies with the rules of
// torch.distributed.pipelining, the same for every schedule:
//   F(k, m) needs F(k-1, m);
//   B(k, m) and I(k, m) need B or I of (k+1, m), and on the last model stage
//   they need F(k, m);
//   W(k, m) needs I(k, m);
// plus program order on every rank. So a built-in schedule and the same
// schedule imported from a CSV give the same DAG. An overlapped action
// (F;B) is one node that waits for what either half waits for.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/dag.h"

namespace perseus::schedules {

enum class ScheduleKind { kOneFOneB, kGPipe, kInterleavedOneFOneB, kZeroBubbleH1 };

// "1f1b", "gpipe", "interleaved-1f1b", "zb-h1".
std::string_view ScheduleName(ScheduleKind kind);
bool ParseScheduleName(std::string_view text, ScheduleKind* out);
// The list of names above, for help texts: "1f1b, gpipe, interleaved-1f1b, zb-h1".
std::string ScheduleNames();

struct Action {
  Action() = default;
  Action(int stage_, planner::Instruction instruction_, int microbatch_,
         planner::Part overlap_ = {})
      : stage(stage_), instruction(instruction_), microbatch(microbatch_), overlap(overlap_) {}

  int stage = 0;  // model stage (chunk)
  planner::Instruction instruction = planner::Instruction::kForward;
  int microbatch = 0;
  // DualPipeV's overlapped forward+backward (torch's `(0F7;7B3)OVERLAP_F_B`):
  // the fields above are the forward half (F), `overlap` the backward half (B
  // or I). torch's runtime runs the two back to back on the rank; the DAG has
  // one node for both.
  planner::Part overlap;
  bool overlapped() const { return overlap.stage >= 0; }
  auto operator<=>(const Action&) const = default;
};

// "0F3" style, as torch.distributed.pipelining writes it; an overlapped
// action as "(0F7;7B3)" (the CSV adds torch's "OVERLAP_F_B" suffix).
std::string ActionString(const Action& a);

// Per rank, the actions in execution order.
using RankOrders = std::vector<std::vector<Action>>;

struct ScheduleShape {
  int stages = 0;          // pipeline ranks S
  int microbatches = 0;    // M
  int virtual_stages = 1;  // V, interleaved-1f1b only (model stages = S * V)
};

// The per-rank orders of a built-in schedule. kInvalidInput for bad shapes
// (S, M < 1; V < 1; V > 1 for non-interleaved schedules; interleaved with M
// not divisible by S).
Result<RankOrders> GenerateRankOrders(ScheduleKind kind, const ScheduleShape& shape);

// Model stages a built-in schedule uses: S * V for interleaved, else S.
int NumModelStages(ScheduleKind kind, const ScheduleShape& shape);

// Builds the DAG of any per-rank order (built-in or imported): checks that
// every model stage runs on one rank, that each (stage, microbatch) has one F
// and either one B or one I and one W, that the computations form full
// microbatch x stage grids, and that the schedule does not deadlock. The two
// halves of an overlapped action count as two computations for these checks
// (each occupies its own place in the grid) and become one node; an overlap
// whose first half is not F or whose second is not B/I, or one half of which
// waits for the other, is an error. Errors name the first offending action
// (rank and position).
Result<planner::Dag> BuildScheduleDag(const RankOrders& orders);

// GenerateRankOrders + BuildScheduleDag.
Result<planner::Dag> MakeScheduleDag(ScheduleKind kind, const ScheduleShape& shape);

}  // namespace perseus::schedules
