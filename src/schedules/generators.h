// The per-rank orders of each built-in schedule (shapes already validated).
#pragma once

#include "perseus/schedules/schedule.h"

namespace perseus::schedules::internal {

RankOrders OneFOneBOrders(int stages, int microbatches);
RankOrders GPipeOrders(int stages, int microbatches);
RankOrders InterleavedOneFOneBOrders(int stages, int microbatches, int virtual_stages);
RankOrders ZeroBubbleH1Orders(int stages, int microbatches);

}  // namespace perseus::schedules::internal
