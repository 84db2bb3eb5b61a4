// Schedules in the CSV form of torch.distributed.pipelining
// (PipelineScheduleMulti._dump_csv / _load_csv, "compute_only" format):
// one row per rank, no header, one action per cell such as `0F3` (stage 0,
// forward, microbatch 3), `1B2`, `2I0`, `2W0`; an empty cell is an idle slot.
// Communication and sharding actions (`SEND_F`, `RECV_B`, `UNSHARD`, ...)
// may appear and are ignored.
#pragma once

#include <string>
#include <string_view>

#include "perseus/common/status.h"
#include "perseus/schedules/schedule.h"

namespace perseus::schedules {

// Errors: kInvalidInput "FILE:LINE: column C: problem".
Result<RankOrders> ParseScheduleCsv(std::string_view text, const std::string& source_name);
Result<RankOrders> ReadScheduleCsv(const std::string& path);
std::string WriteScheduleCsv(const RankOrders& orders);

}  // namespace perseus::schedules
