// BuildScheduleDag: per-rank orders -> validated DAG (see schedule.h).
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "perseus/schedules/schedule.h"

namespace perseus::schedules {

using planner::Instruction;
using planner::Part;

namespace {

struct Slot {
  int rank = -1, position = -1, node = -1;
};

// Where every computation of a stage x microbatch grid sits.
class Grid {
 public:
  Grid(int stages, int microbatches)
      : stages_(stages),
        microbatches_(microbatches),
        slots_(static_cast<size_t>(stages) * microbatches * 4) {}
  int stages() const { return stages_; }
  int microbatches() const { return microbatches_; }
  size_t index(const Part& p) const {
    return (static_cast<size_t>(p.stage) * microbatches_ + p.microbatch) * 4 +
           static_cast<size_t>(p.instruction);
  }
  Slot& at(const Part& p) { return slots_[index(p)]; }
  bool has(int stage, Instruction ins, int m) { return at({stage, ins, m}).rank >= 0; }

 private:
  int stages_, microbatches_;
  std::vector<Slot> slots_;
};

// The computations an action stands for: itself, or an overlap's two halves.
struct Halves {
  Part part[2];
  int count = 1;
  const Part* begin() const { return part; }
  const Part* end() const { return part + count; }
};

Halves HalvesOf(const Action& a) {
  Halves h;
  h.part[0] = {a.stage, a.instruction, a.microbatch};
  if (a.overlapped()) {
    h.part[1] = a.overlap;
    h.count = 2;
  }
  return h;
}

std::string PartString(const Part& p) {
  return ActionString({p.stage, p.instruction, p.microbatch});
}

std::string Where(int rank, int position, const Action& a) {
  const std::string text = ActionString(a);  // an overlap's is parenthesised already
  return "rank " + std::to_string(rank) + ", action " + std::to_string(position + 1) + " " +
         (a.overlapped() ? text : "(" + text + ")");
}

// The computation a half waits for (by the rules in schedule.h), if any.
// REQUIRES: the grid is complete (every stage x microbatch has F and B or I/W).
std::optional<Part> Dependency(const Part& p, Grid& grid) {
  const int k = p.stage, m = p.microbatch;
  switch (p.instruction) {
    case Instruction::kForward:
      if (k > 0) return Part{k - 1, Instruction::kForward, m};
      return std::nullopt;
    case Instruction::kBackward:
    case Instruction::kBackwardInput:
      if (k + 1 == grid.stages()) return Part{k, Instruction::kForward, m};
      if (grid.has(k + 1, Instruction::kBackward, m)) return Part{k + 1, Instruction::kBackward, m};
      return Part{k + 1, Instruction::kBackwardInput, m};
    case Instruction::kBackwardWeight:
      return Part{k, Instruction::kBackwardInput, m};
  }
  return std::nullopt;
}

}  // namespace

Result<planner::Dag> BuildScheduleDag(const RankOrders& orders) {
  // Extent of the grid and basic checks.
  int num_stages = 0, num_microbatches = 0;
  for (size_t r = 0; r < orders.size(); ++r) {
    for (size_t p = 0; p < orders[r].size(); ++p) {
      const Action& a = orders[r][p];
      if (a.overlapped() && (a.instruction != Instruction::kForward ||
                             (a.overlap.instruction != Instruction::kBackward &&
                              a.overlap.instruction != Instruction::kBackwardInput))) {
        return Status::InvalidInput(Where(static_cast<int>(r), static_cast<int>(p), a) +
                                    ": an overlapped action must be a forward (F) followed by a "
                                    "backward (B or I)");
      }
      for (const Part& h : HalvesOf(a)) {
        if (h.stage < 0 || h.microbatch < 0) {
          return Status::InvalidInput(Where(static_cast<int>(r), static_cast<int>(p), a) +
                                      ": negative stage or microbatch");
        }
        num_stages = std::max(num_stages, h.stage + 1);
        num_microbatches = std::max(num_microbatches, h.microbatch + 1);
      }
    }
  }
  if (num_stages == 0) return Status::InvalidInput("the schedule has no computations");
  if (static_cast<long>(num_stages) * num_microbatches > 50'000'000) {
    return Status::InvalidInput("the schedule is too large");
  }

  Grid grid(num_stages, num_microbatches);
  std::vector<int> rank_of_stage(num_stages, -1);
  for (size_t r = 0; r < orders.size(); ++r) {
    for (size_t p = 0; p < orders[r].size(); ++p) {
      const Action& a = orders[r][p];
      const int rank = static_cast<int>(r), pos = static_cast<int>(p);
      for (const Part& h : HalvesOf(a)) {
        if (rank_of_stage[h.stage] >= 0 && rank_of_stage[h.stage] != rank) {
          return Status::InvalidInput(Where(rank, pos, a) + ": stage " + std::to_string(h.stage) +
                                      " already runs on rank " +
                                      std::to_string(rank_of_stage[h.stage]) +
                                      " (a stage must run on one rank)");
        }
        rank_of_stage[h.stage] = rank;
        Slot& slot = grid.at(h);
        if (slot.rank >= 0) {
          return Status::InvalidInput(
              Where(rank, pos, a) + ": " +
              (a.overlapped() ? "its " + PartString(h) + " is a " : "") + "duplicate of " +
              Where(slot.rank, slot.position, orders[slot.rank][slot.position]));
        }
        slot.rank = rank;
        slot.position = pos;
      }
    }
  }
  // Every stage x microbatch has F and either B or (I and W).
  for (int k = 0; k < num_stages; ++k) {
    for (int m = 0; m < num_microbatches; ++m) {
      auto missing = [&](Instruction ins, const std::string& why) {
        return Status::InvalidInput(
            "the schedule misses computation " + ActionString(Action{k, ins, m}) + " (stage " +
            std::to_string(k) + " " + std::string(planner::InstructionName(ins)) +
            " of microbatch " + std::to_string(m) + ")" + why);
      };
      if (!grid.has(k, Instruction::kForward, m)) return missing(Instruction::kForward, "");
      const bool b = grid.has(k, Instruction::kBackward, m);
      const bool i = grid.has(k, Instruction::kBackwardInput, m);
      const bool w = grid.has(k, Instruction::kBackwardWeight, m);
      if (b && (i || w)) {
        const Slot& s =
            grid.at({k, i ? Instruction::kBackwardInput : Instruction::kBackwardWeight, m});
        return Status::InvalidInput(Where(s.rank, s.position, orders[s.rank][s.position]) +
                                    ": stage " + std::to_string(k) + " microbatch " +
                                    std::to_string(m) +
                                    " has a full backward (B) as well as a split one (I/W)");
      }
      if (!b && !i && !w) return missing(Instruction::kBackward, "");
      if (i && !w) return missing(Instruction::kBackwardWeight, ": its I has no W");
      if (w && !i) return missing(Instruction::kBackwardInput, ": its W has no I");
    }
  }
  // The halves of an overlap run as one: neither may wait for the other.
  for (size_t r = 0; r < orders.size(); ++r) {
    for (size_t p = 0; p < orders[r].size(); ++p) {
      const Action& a = orders[r][p];
      if (!a.overlapped()) continue;
      const Halves halves = HalvesOf(a);
      for (int h = 0; h < 2; ++h) {
        const std::optional<Part> d = Dependency(halves.part[h], grid);
        if (d && *d == halves.part[1 - h]) {
          return Status::InvalidInput(
              Where(static_cast<int>(r), static_cast<int>(p), a) + ": its " +
              (h == 0 ? "forward" : "backward") + " half " + PartString(halves.part[h]) +
              " waits for its other half " + PartString(halves.part[1 - h]) +
              ", but the halves of an overlapped action run as one computation");
        }
      }
    }
  }

  // Deadlock check by running the schedule: each rank runs its next action
  // once everything it waits for has run.
  {
    std::vector<size_t> next(orders.size(), 0);
    std::vector<char> done(static_cast<size_t>(num_stages) * num_microbatches * 4, 0);
    size_t remaining = 0;
    for (const auto& order : orders) remaining += order.size();
    bool progressed = true;
    while (remaining > 0 && progressed) {
      progressed = false;
      for (size_t r = 0; r < orders.size(); ++r) {
        while (next[r] < orders[r].size()) {
          const Halves halves = HalvesOf(orders[r][next[r]]);
          bool ready = true;
          for (const Part& h : halves) {
            const std::optional<Part> d = Dependency(h, grid);
            ready = ready && (!d || done[grid.index(*d)]);
          }
          if (!ready) break;
          for (const Part& h : halves) done[grid.index(h)] = 1;
          ++next[r];
          --remaining;
          progressed = true;
        }
      }
    }
    if (remaining > 0) {
      // Follow "waits for" from the first stuck rank's next action to the
      // rank that runs what it waits for, until a rank repeats: those links
      // form the cycle; name them.
      std::vector<int> visited_at(orders.size(), -1);
      std::vector<std::string> links;
      size_t r = 0;
      while (next[r] == orders[r].size()) ++r;
      for (;;) {
        visited_at[r] = static_cast<int>(links.size());
        const Action& a = orders[r][next[r]];
        Part wait;
        for (const Part& h : HalvesOf(a)) {
          const std::optional<Part> d = Dependency(h, grid);
          if (d && !done[grid.index(*d)]) wait = *d;
        }
        const Slot& s = grid.at(wait);
        links.push_back(Where(static_cast<int>(r), static_cast<int>(next[r]), a) + " waits for " +
                        PartString(wait) + " (rank " + std::to_string(s.rank) + ", action " +
                        std::to_string(s.position + 1) + ")");
        r = static_cast<size_t>(s.rank);
        if (visited_at[r] >= 0) break;
      }
      std::string cycle;
      for (size_t k = static_cast<size_t>(visited_at[r]); k < links.size(); ++k) {
        cycle += (cycle.empty() ? "" : "; ") + links[k];
      }
      return Status::InvalidInput("the schedule deadlocks: " + cycle);
    }
  }

  planner::Dag dag;
  for (size_t r = 0; r < orders.size(); ++r) {
    for (const Action& a : orders[r]) {
      const int id = dag.AddComputation(
          {static_cast<int>(r), a.stage, a.instruction, a.microbatch, a.overlap});
      for (const Part& h : HalvesOf(a)) grid.at(h).node = id;
    }
  }
  for (const auto& order : orders) {
    for (const Action& a : order) {
      const int to = grid.at({a.stage, a.instruction, a.microbatch}).node;
      for (const Part& h : HalvesOf(a)) {
        if (const std::optional<Part> d = Dependency(h, grid)) {
          dag.AddDependency(grid.at(*d).node, to);
        }
      }
    }
  }
  Status status = dag.Finalize();
  if (!status.ok()) return status;
  return dag;
}

}  // namespace perseus::schedules
