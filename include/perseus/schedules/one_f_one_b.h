// Synchronous 1F1B, in the order of DeepSpeed's TrainSchedule: stage s runs
// min(S-s-1, M) warm-up forwards, then alternates one forward and one backward,
// then the remaining backwards. Dependencies: F(s,m) -> F(s+1,m) and
// B(s+1,m) -> B(s,m), plus program order on each GPU (stage s runs on GPU s).
#pragma once

#include "perseus/common/status.h"
#include "perseus/planner/dag.h"

namespace perseus::schedules {

// Fails with kInvalidInput unless stages >= 1 and microbatches >= 1.
Result<planner::Dag> MakeOneFOneB(int stages, int microbatches);

}  // namespace perseus::schedules
