// Profiles: measured time and energy of one microbatch's forward/backward of
// one pipeline stage, at every GPU SM frequency.
//
// File format (CSV, the one used by Perseus and Zeus): a header naming at least
// the columns `stage,instruction,frequency,time,energy` in any order (extra
// columns are ignored), then one row per (stage, instruction, frequency):
//   stage        non-negative integer; every stage 0..S-1 must have rows
//   instruction  forward | backward | backward_input | backward_weight
//   frequency    SM frequency in MHz (positive integer)
//   time         seconds (finite, > 0)
//   energy       joules (finite, >= 0)
//   (numbers are decimals such as 0.05 or 1.2e3: hex, inf and nan are refused)
//   tp_rank      optional: the tensor-parallel rank the row was measured on
//                (non-negative integer); see CombineTensorParallel
// Fields are echoed in messages cut to 60 characters (FieldText).
// Every problem is reported as "FILE:LINE: problem" with StatusCode::kInvalidInput.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "perseus/common/status.h"

namespace perseus::planner {

enum class Instruction { kForward = 0, kBackward = 1, kBackwardInput = 2, kBackwardWeight = 3 };

// "forward", "backward", "backward_input", "backward_weight".
std::string_view InstructionName(Instruction instruction);
// Short form used in schedule renderings: F, B, I, W.
char InstructionLetter(Instruction instruction);
// Parses the long names above; false if unknown.
bool ParseInstruction(std::string_view text, Instruction* out);

struct Measurement {
  int frequency_mhz = 0;
  double time_s = 0;
  double energy_j = 0;
  int line = 0;      // line in the source file, for error messages
  int tp_rank = -1;  // tensor-parallel rank, if the file has a tp_rank column
};

struct ProfileKey {
  int stage = 0;
  Instruction instruction = Instruction::kForward;
  auto operator<=>(const ProfileKey&) const = default;
};

// A parsed, validated profile. Invariant: stages 0..num_stages-1 all have rows,
// no (stage, instruction, frequency) appears twice, all values are finite.
struct Profile {
  std::string source;  // file name, for messages
  int num_stages = 0;
  bool has_tp_rank = false;  // rows are per tensor-parallel rank
  std::map<ProfileKey, std::vector<Measurement>> measurements;

  // nullptr if the profile has no rows for (stage, instruction).
  const std::vector<Measurement>* Find(int stage, Instruction instruction) const;
};

Result<Profile> ParseProfileCsv(std::string_view text, const std::string& source_name);
// The most a profile file may hold; the shipped ones are under 100 kB.
inline constexpr uint64_t kMaxProfileBytes = uint64_t{64} << 20;
// A profile file's bytes: a regular file of at most kMaxProfileBytes
// (a FIFO, /dev/zero or a directory is refused without reading it);
// kNotFound if it does not exist, kInvalidInput "PATH: problem" otherwise.
Result<std::string> ReadProfileText(const std::string& path);
// ReadProfileText, then ParseProfileCsv.
Result<Profile> ReadProfileCsv(const std::string& path);

// Multiplies every time by time_scale and every energy by energy_scale (both > 0).
void ScaleProfile(Profile* profile, double time_scale, double energy_scale);

}  // namespace perseus::planner
