// Schedules in the CSV form of torch.distributed.pipelining
// (PipelineScheduleMulti._dump_csv / _load_csv; _PipelineScheduleRuntime's
// "compute_only" and "compute_comms" formats): one row per rank, no header,
// one action per cell such as `0F3` (stage 0, forward, microbatch 3), `1B2`,
// `2I0`, `2W0`; an empty cell is an idle slot. Communication, sharding and
// gradient-reduction actions (`0SEND_F3`, `4RECV_B0`, `0UNSHARD`, `0RESHARD`,
// `0REDUCE_GRAD`) may appear and are ignored. DualPipeV's overlapped
// forward+backward `(0F7;7B3)OVERLAP_F_B` (a forward, then a backward B or I,
// separated by ';') is one action with an overlap part.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "perseus/common/status.h"
#include "perseus/schedules/schedule.h"

namespace perseus::schedules {

// Errors: kInvalidInput "FILE:LINE: column C: problem" (the cell echoed cut
// to 60 characters).
Result<RankOrders> ParseScheduleCsv(std::string_view text, const std::string& source_name);
// The most a schedule file may hold (a 2^18-computation schedule, the
// planner's limit, is about 2 MB).
inline constexpr uint64_t kMaxScheduleBytes = uint64_t{64} << 20;
// A regular file of at most kMaxScheduleBytes (a FIFO or device is refused
// without reading it), then ParseScheduleCsv; kNotFound if it does not exist.
Result<RankOrders> ReadScheduleCsv(const std::string& path);
// Compute-only form; overlapped actions as torch writes them, `(0F7;7B3)OVERLAP_F_B`.
std::string WriteScheduleCsv(const RankOrders& orders);

}  // namespace perseus::schedules
