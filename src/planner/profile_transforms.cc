#include "perseus/planner/profile_transforms.h"

#include <algorithm>
#include <map>

namespace perseus::planner {

Result<Profile> CombineTensorParallel(const Profile& profile, int tp,
                                      std::vector<std::string>* notes) {
  if (tp < 1) return Status::InvalidInput("tp must be at least 1");
  Profile out = profile;
  out.has_tp_rank = false;
  if (!profile.has_tp_rank) {
    if (tp > 1) {
      for (auto& [key, rows] : out.measurements) {
        for (Measurement& m : rows) m.energy_j *= tp;
      }
      notes->push_back("profile rows are for one GPU: energies multiplied by --tp " +
                       std::to_string(tp) + " (tensor-parallel ranks in lockstep)");
    }
    return out;
  }
  for (auto& [key, rows] : out.measurements) {
    // frequency -> combined row and the ranks seen
    std::map<int, std::pair<Measurement, std::vector<int>>> by_frequency;
    for (const Measurement& m : rows) {
      auto& [combined, ranks] = by_frequency[m.frequency_mhz];
      if (m.tp_rank >= tp) {
        return Status::InvalidInput(profile.source + ":" + std::to_string(m.line) + ": tp_rank " +
                                    std::to_string(m.tp_rank) + " but --tp is " +
                                    std::to_string(tp));
      }
      if (ranks.empty()) {
        combined = m;
        combined.tp_rank = -1;
      } else {
        combined.time_s = std::max(combined.time_s, m.time_s);
        combined.energy_j += m.energy_j;
        combined.line = std::min(combined.line, m.line);
      }
      ranks.push_back(m.tp_rank);
    }
    rows.clear();
    for (auto& [frequency, entry] : by_frequency) {
      if (static_cast<int>(entry.second.size()) != tp) {
        return Status::InvalidInput(
            profile.source + ":" + std::to_string(entry.first.line) + ": stage " +
            std::to_string(key.stage) + " " + std::string(InstructionName(key.instruction)) +
            " at " + std::to_string(frequency) + " MHz has rows for " +
            std::to_string(entry.second.size()) + " tensor-parallel ranks, --tp is " +
            std::to_string(tp) + " (each of ranks 0.." + std::to_string(tp - 1) + " needs a row)");
      }
      rows.push_back(entry.first);
    }
  }
  notes->push_back("tensor-parallel ranks combined: time = max over " + std::to_string(tp) +
                   " ranks, energy = sum");
  return out;
}

Profile SplitBackward(const Profile& profile, std::vector<std::string>* notes) {
  Profile out = profile;
  int split = 0;
  for (int s = 0; s < profile.num_stages; ++s) {
    const auto* backward = profile.Find(s, Instruction::kBackward);
    if (backward == nullptr || profile.Find(s, Instruction::kBackwardInput) != nullptr ||
        profile.Find(s, Instruction::kBackwardWeight) != nullptr) {
      continue;
    }
    std::vector<Measurement> half = *backward;
    for (Measurement& m : half) {
      m.time_s /= 2;
      m.energy_j /= 2;
    }
    out.measurements[{s, Instruction::kBackwardInput}] = half;
    out.measurements[{s, Instruction::kBackwardWeight}] = half;
    ++split;
  }
  if (split > 0) {
    notes->push_back("backward_input and backward_weight derived from backward for " +
                     std::to_string(split) +
                     " stage(s): each takes half of the backward's time and energy");
  }
  return out;
}

Profile SplitStagesIntoChunks(const Profile& profile, int chunks_per_stage,
                              std::vector<std::string>* notes) {
  if (chunks_per_stage <= 1) return profile;
  Profile out;
  out.source = profile.source;
  out.num_stages = profile.num_stages * chunks_per_stage;
  for (const auto& [key, rows] : profile.measurements) {
    std::vector<Measurement> part = rows;
    for (Measurement& m : part) {
      m.time_s /= chunks_per_stage;
      m.energy_j /= chunks_per_stage;
    }
    for (int c = 0; c < chunks_per_stage; ++c) {
      out.measurements[{key.stage * chunks_per_stage + c, key.instruction}] = part;
    }
  }
  notes->push_back("model chunks derived from the profile's " + std::to_string(profile.num_stages) +
                   " stages: stage p becomes chunks " + std::to_string(chunks_per_stage) + "p.." +
                   std::to_string(chunks_per_stage) + "p+" + std::to_string(chunks_per_stage - 1) +
                   ", each with 1/" + std::to_string(chunks_per_stage) + " of its time and energy");
  return out;
}

Profile RepeatStages(const Profile& profile, int num_stages) {
  Profile out;
  out.source = profile.source;
  out.num_stages = num_stages;
  out.has_tp_rank = profile.has_tp_rank;
  for (const auto& [key, rows] : profile.measurements) {
    for (int k = key.stage; k < num_stages; k += profile.num_stages) {
      out.measurements[{k, key.instruction}] = rows;
    }
  }
  return out;
}

}  // namespace perseus::planner
