#include "perseus/schedules/schedule.h"

#include "src/schedules/generators.h"

namespace perseus::schedules {

namespace {

constexpr ScheduleKind kKinds[] = {ScheduleKind::kOneFOneB, ScheduleKind::kGPipe,
                                   ScheduleKind::kInterleavedOneFOneB, ScheduleKind::kZeroBubbleH1};

}  // namespace

std::string_view ScheduleName(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kOneFOneB:
      return "1f1b";
    case ScheduleKind::kGPipe:
      return "gpipe";
    case ScheduleKind::kInterleavedOneFOneB:
      return "interleaved-1f1b";
    case ScheduleKind::kZeroBubbleH1:
      return "zb-h1";
  }
  return "?";
}

bool ParseScheduleName(std::string_view text, ScheduleKind* out) {
  for (ScheduleKind kind : kKinds) {
    if (text == ScheduleName(kind)) {
      *out = kind;
      return true;
    }
  }
  return false;
}

std::string ScheduleNames() {
  std::string names;
  for (ScheduleKind kind : kKinds) {
    if (!names.empty()) names += ", ";
    names += ScheduleName(kind);
  }
  return names;
}

std::string ActionString(const Action& a) {
  std::string text = std::to_string(a.stage) + planner::InstructionLetter(a.instruction) +
                     std::to_string(a.microbatch);
  if (!a.overlapped()) return text;
  return "(" + text + ";" + std::to_string(a.overlap.stage) +
         planner::InstructionLetter(a.overlap.instruction) + std::to_string(a.overlap.microbatch) +
         ")";
}

int NumModelStages(ScheduleKind kind, const ScheduleShape& shape) {
  return kind == ScheduleKind::kInterleavedOneFOneB ? shape.stages * shape.virtual_stages
                                                    : shape.stages;
}

Result<RankOrders> GenerateRankOrders(ScheduleKind kind, const ScheduleShape& shape) {
  if (shape.stages < 1) return Status::InvalidInput("stages must be at least 1");
  if (shape.microbatches < 1) return Status::InvalidInput("microbatches must be at least 1");
  if (shape.virtual_stages < 1) return Status::InvalidInput("virtual_stages must be at least 1");
  if (static_cast<long>(shape.stages) * shape.microbatches * shape.virtual_stages > 10'000'000) {
    return Status::InvalidInput(
        "stages x microbatches x virtual stages is too large (limit 10,000,000)");
  }
  if (kind != ScheduleKind::kInterleavedOneFOneB && shape.virtual_stages != 1) {
    return Status::InvalidInput("virtual_stages applies only to the interleaved-1f1b schedule");
  }
  switch (kind) {
    case ScheduleKind::kOneFOneB:
      return internal::OneFOneBOrders(shape.stages, shape.microbatches);
    case ScheduleKind::kGPipe:
      return internal::GPipeOrders(shape.stages, shape.microbatches);
    case ScheduleKind::kZeroBubbleH1:
      return internal::ZeroBubbleH1Orders(shape.stages, shape.microbatches);
    case ScheduleKind::kInterleavedOneFOneB:
      if (shape.microbatches % shape.stages != 0) {
        return Status::InvalidInput("interleaved-1f1b needs the number of microbatches (" +
                                    std::to_string(shape.microbatches) +
                                    ") to be a multiple of the number of stages (" +
                                    std::to_string(shape.stages) + "), as Megatron-LM requires");
      }
      return internal::InterleavedOneFOneBOrders(shape.stages, shape.microbatches,
                                                 shape.virtual_stages);
  }
  return Status::Internal("unknown schedule");
}

Result<planner::Dag> MakeScheduleDag(ScheduleKind kind, const ScheduleShape& shape) {
  auto orders = GenerateRankOrders(kind, shape);
  if (!orders.ok()) return orders.status();
  return BuildScheduleDag(orders.value());
}

}  // namespace perseus::schedules
