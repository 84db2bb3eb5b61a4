#include "perseus/planner/profile.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>

#include "perseus/common/files.h"

namespace perseus::planner {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(Trim(line.substr(start)));
      return out;
    }
    out.push_back(Trim(line.substr(start, comma - start)));
    start = comma + 1;
  }
}

// "inf", "-Infinity", "nan", "NAN(0x1)": what strtod reads as non-finite.
bool IsNonFiniteWord(std::string_view text) {
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) text.remove_prefix(1);
  std::string lower;
  for (char c : text.substr(0, 3)) {
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return lower == "inf" || lower == "nan";
}

// Decimal numbers only (IsDecimalNumberText): no hex, inf or nan.
bool ParseDouble(std::string_view text, double* out) {
  if (!IsDecimalNumberText(text)) return false;
  std::string buf(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(buf.c_str(), &end);
  if (end != buf.c_str() + buf.size()) return false;
  *out = v;
  return true;
}

bool ParseInt(std::string_view text, long* out) {
  double v = 0;
  if (!ParseDouble(text, &v) || !std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 1e9) {
    return false;
  }
  *out = static_cast<long>(v);
  return true;
}

}  // namespace

std::string_view InstructionName(Instruction instruction) {
  switch (instruction) {
    case Instruction::kForward:
      return "forward";
    case Instruction::kBackward:
      return "backward";
    case Instruction::kBackwardInput:
      return "backward_input";
    case Instruction::kBackwardWeight:
      return "backward_weight";
  }
  return "?";
}

char InstructionLetter(Instruction instruction) {
  switch (instruction) {
    case Instruction::kForward:
      return 'F';
    case Instruction::kBackward:
      return 'B';
    case Instruction::kBackwardInput:
      return 'I';
    case Instruction::kBackwardWeight:
      return 'W';
  }
  return '?';
}

bool ParseInstruction(std::string_view text, Instruction* out) {
  for (Instruction i : {Instruction::kForward, Instruction::kBackward, Instruction::kBackwardInput,
                        Instruction::kBackwardWeight}) {
    if (text == InstructionName(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

const std::vector<Measurement>* Profile::Find(int stage, Instruction instruction) const {
  auto it = measurements.find(ProfileKey{stage, instruction});
  return it == measurements.end() ? nullptr : &it->second;
}

Result<Profile> ParseProfileCsv(std::string_view text, const std::string& source_name) {
  Profile profile;
  profile.source = source_name;
  auto error = [&](int line, const std::string& problem) {
    return Status::InvalidInput(source_name + ":" + std::to_string(line) + ": " + problem);
  };

  // Strip a UTF-8 byte order mark.
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);

  const char* kColumns[] = {"stage", "instruction", "frequency", "time", "energy", "tp_rank"};
  constexpr int kRequired = 5, kAll = 6;
  int column_index[kAll] = {-1, -1, -1, -1, -1, -1};
  size_t num_header_fields = 0;
  bool have_header = false;
  // (stage, instruction, frequency, tp rank) -> line, to report duplicates.
  std::map<std::tuple<int, int, int, int>, int> seen;
  std::set<int> stages;

  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (Trim(line).empty()) continue;
    std::vector<std::string_view> fields = SplitFields(line);

    if (!have_header) {
      have_header = true;
      num_header_fields = fields.size();
      for (size_t f = 0; f < fields.size(); ++f) {
        for (int c = 0; c < kAll; ++c) {
          if (fields[f] == kColumns[c]) {
            if (column_index[c] >= 0) {
              return error(line_no, "column '" + std::string(kColumns[c]) + "' appears twice");
            }
            column_index[c] = static_cast<int>(f);
          }
        }
      }
      for (int c = 0; c < kRequired; ++c) {
        if (column_index[c] < 0) {
          return error(line_no, "missing column '" + std::string(kColumns[c]) +
                                    "' (the header must name stage,instruction,frequency,"
                                    "time,energy)");
        }
      }
      profile.has_tp_rank = column_index[5] >= 0;
      continue;
    }

    if (fields.size() != num_header_fields) {
      return error(line_no, "expected " + std::to_string(num_header_fields) +
                                " fields as in the header, found " + std::to_string(fields.size()));
    }
    auto field = [&](int c) { return fields[column_index[c]]; };

    long stage = 0;
    if (!ParseInt(field(0), &stage) || stage < 0) {
      return error(line_no, "stage '" + FieldText(field(0)) + "' is not a non-negative integer");
    }
    if (stage > 100000) return error(line_no, "stage " + std::to_string(stage) + " is too large");
    Instruction instruction;
    if (!ParseInstruction(field(1), &instruction)) {
      return error(line_no, "unknown instruction '" + FieldText(field(1)) +
                                "' (expected forward, backward, backward_input or "
                                "backward_weight)");
    }
    long frequency = 0;
    if (!ParseInt(field(2), &frequency) || frequency <= 0) {
      return error(line_no,
                   "frequency '" + FieldText(field(2)) + "' is not a positive integer (MHz)");
    }
    double time = 0, energy = 0;
    // A number field: decimal and finite ("time is not finite: 'inf'").
    auto number = [&](int c, const char* name, double* v) -> std::optional<Status> {
      const std::string_view value = field(c);
      if (IsNonFiniteWord(value)) {
        return error(line_no, std::string(name) + " is not finite: '" + FieldText(value) +
                                  "' (numbers must be finite decimals)");
      }
      if (!ParseDouble(value, v)) {
        return error(line_no, std::string(name) + " '" + FieldText(value) +
                                  "' is not a number (a decimal such as 0.05 or 1.2e3; hex, inf "
                                  "and nan are refused)");
      }
      if (!std::isfinite(*v)) {
        return error(line_no, std::string(name) + " is not finite: '" + FieldText(value) +
                                  "' overflows a double");
      }
      return std::nullopt;
    };
    if (auto bad = number(3, "time", &time)) return *bad;
    if (time <= 0) {
      return error(line_no, "time " + FieldText(field(3)) + " must be positive (seconds)");
    }
    if (auto bad = number(4, "energy", &energy)) return *bad;
    if (energy < 0) {
      return error(line_no, "energy " + FieldText(field(4)) + " must not be negative (joules)");
    }

    long tp_rank = -1;
    if (profile.has_tp_rank && (!ParseInt(field(5), &tp_rank) || tp_rank < 0 || tp_rank > 65535)) {
      return error(line_no, "tp_rank '" + FieldText(field(5)) + "' is not a non-negative integer");
    }
    auto key = std::make_tuple(static_cast<int>(stage), static_cast<int>(instruction),
                               static_cast<int>(frequency), static_cast<int>(tp_rank));
    auto [it, inserted] = seen.emplace(key, line_no);
    if (!inserted) {
      return error(line_no, "duplicate row for stage " + std::to_string(stage) + " " +
                                std::string(InstructionName(instruction)) + " at " +
                                std::to_string(frequency) + " MHz" +
                                (tp_rank >= 0 ? " on tp_rank " + std::to_string(tp_rank) : "") +
                                " (first given on line " + std::to_string(it->second) + ")");
    }
    stages.insert(static_cast<int>(stage));
    profile.measurements[ProfileKey{static_cast<int>(stage), instruction}].push_back(
        Measurement{static_cast<int>(frequency), time, energy, line_no, static_cast<int>(tp_rank)});
  }

  if (!have_header) return error(1, "empty file (expected a header line)");
  if (stages.empty()) return error(line_no, "no data rows after the header");
  int expected = 0;
  for (int s : stages) {
    if (s != expected) {
      return error(line_no, "stage " + std::to_string(expected) +
                                " has no rows (stages must be numbered 0.." +
                                std::to_string(*stages.rbegin()) + " without gaps)");
    }
    ++expected;
  }
  profile.num_stages = expected;
  return profile;
}

Result<std::string> ReadProfileText(const std::string& path) {
  return ReadRegularFile(path, kMaxProfileBytes, "profile file");
}

Result<Profile> ReadProfileCsv(const std::string& path) {
  auto text = ReadProfileText(path);
  if (!text.ok()) return text.status();
  return ParseProfileCsv(*text, path);
}

void ScaleProfile(Profile* profile, double time_scale, double energy_scale) {
  for (auto& [key, rows] : profile->measurements) {
    for (Measurement& m : rows) {
      m.time_s *= time_scale;
      m.energy_j *= energy_scale;
    }
  }
}

}  // namespace perseus::planner
