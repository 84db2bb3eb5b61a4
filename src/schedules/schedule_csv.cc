#include "perseus/schedules/schedule_csv.h"

#include <cctype>

#include "perseus/common/files.h"

namespace perseus::schedules {

using planner::Instruction;

namespace {

constexpr std::string_view kOverlapSuffix = "OVERLAP_F_B";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = Trim(s.substr(1, s.size() - 2));
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

enum class CellKind { kCompute, kIgnored, kBad };

// One plain action, as torch's _Action.from_str reads it:
// (\d+)(F|I|B|W|UNSHARD|RESHARD|REDUCE_GRAD|SEND_F|RECV_F|SEND_B|RECV_B)(\d*)
CellKind ParseSimple(std::string_view cell, Action* out) {
  size_t i = 0;
  while (i < cell.size() && std::isdigit(static_cast<unsigned char>(cell[i]))) ++i;
  if (!AllDigits(cell.substr(0, i))) return CellKind::kBad;
  size_t j = i;
  while (j < cell.size() && !std::isdigit(static_cast<unsigned char>(cell[j]))) ++j;
  std::string_view type = cell.substr(i, j - i), index = cell.substr(j);
  if (!index.empty() && !AllDigits(index)) return CellKind::kBad;
  for (std::string_view ignored :
       {"UNSHARD", "RESHARD", "REDUCE_GRAD", "SEND_F", "RECV_F", "SEND_B", "RECV_B"}) {
    if (type == ignored) return CellKind::kIgnored;
  }
  if (type.size() != 1 || index.empty()) return CellKind::kBad;
  switch (type[0]) {
    case 'F':
      out->instruction = Instruction::kForward;
      break;
    case 'B':
      out->instruction = Instruction::kBackward;
      break;
    case 'I':
      out->instruction = Instruction::kBackwardInput;
      break;
    case 'W':
      out->instruction = Instruction::kBackwardWeight;
      break;
    default:
      return CellKind::kBad;
  }
  out->stage = std::stoi(std::string(cell.substr(0, i)));
  out->microbatch = std::stoi(std::string(index));
  return CellKind::kCompute;
}

// A cell: a plain action or `(F;B)OVERLAP_F_B`. On kBad, *why says what is wrong.
CellKind ParseCell(std::string_view cell, Action* out, std::string* why) {
  if (cell.front() != '(') {
    const CellKind kind = ParseSimple(cell, out);
    if (kind == CellKind::kBad) {
      *why =
          "is not an action (expected e.g. 0F3, 1B2, 2I0, 2W0, (0F7;7B3)OVERLAP_F_B, "
          "or a communication action such as 0SEND_F3)";
    }
    return kind;
  }
  const size_t close = cell.find(')');
  if (close == std::string_view::npos || cell.substr(close + 1) != kOverlapSuffix) {
    *why =
        "is not an action (a parenthesised action must be an overlapped forward and "
        "backward, e.g. (0F7;7B3)OVERLAP_F_B)";
    return CellKind::kBad;
  }
  const std::string_view inside = cell.substr(1, close - 1);
  const size_t semicolon = inside.find(';');
  if (semicolon == std::string_view::npos ||
      inside.find(';', semicolon + 1) != std::string_view::npos) {
    *why =
        "is not an overlapped action: OVERLAP_F_B needs exactly two sub-actions, a forward "
        "then a backward, separated by ';' (e.g. (0F7;7B3)OVERLAP_F_B)";
    return CellKind::kBad;
  }
  const std::string_view halves[2] = {Trim(inside.substr(0, semicolon)),
                                      Trim(inside.substr(semicolon + 1))};
  Action parsed[2];
  for (int h = 0; h < 2; ++h) {
    if (halves[h].empty() || ParseSimple(halves[h], &parsed[h]) != CellKind::kCompute) {
      *why = "is not an overlapped action: its " + std::string(h == 0 ? "first" : "second") +
             " sub-action '" + FieldText(halves[h]) +
             "' is not a computation (expected e.g. (0F7;7B3)OVERLAP_F_B)";
      return CellKind::kBad;
    }
  }
  if (parsed[0].instruction != Instruction::kForward) {
    *why = "is not an overlapped action: its first sub-action must be a forward (F), not '" +
           FieldText(halves[0]) + "'";
    return CellKind::kBad;
  }
  if (parsed[1].instruction != Instruction::kBackward &&
      parsed[1].instruction != Instruction::kBackwardInput) {
    *why =
        "is not an overlapped action: its second sub-action must be a backward (B or I), "
        "not '" +
        FieldText(halves[1]) + "'";
    return CellKind::kBad;
  }
  *out = parsed[0];
  out->overlap = {parsed[1].stage, parsed[1].instruction, parsed[1].microbatch};
  return CellKind::kCompute;
}

}  // namespace

Result<RankOrders> ParseScheduleCsv(std::string_view text, const std::string& source_name) {
  RankOrders orders;
  int line_no = 0;
  size_t pos = 0;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Every line is a rank, even an empty one (a rank that computes nothing).
    std::vector<Action> order;
    size_t start = 0;
    int column = 0;
    for (;;) {
      size_t comma = line.find(',', start);
      std::string_view cell = Trim(line.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      ++column;
      if (!cell.empty()) {
        Action a;
        std::string why;
        switch (ParseCell(cell, &a, &why)) {
          case CellKind::kCompute:
            order.push_back(a);
            break;
          case CellKind::kIgnored:
            break;
          case CellKind::kBad:
            return Status::InvalidInput(source_name + ":" + std::to_string(line_no) + ": column " +
                                        std::to_string(column) + ": '" + FieldText(cell) + "' " +
                                        why);
        }
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    orders.push_back(std::move(order));
  }
  while (!orders.empty() && orders.back().empty()) orders.pop_back();
  if (orders.empty()) {
    return Status::InvalidInput(source_name + ":1: the schedule file has no actions");
  }
  return orders;
}

Result<RankOrders> ReadScheduleCsv(const std::string& path) {
  auto text = ReadRegularFile(path, kMaxScheduleBytes, "schedule file");
  if (!text.ok()) return text.status();
  return ParseScheduleCsv(*text, path);
}

std::string WriteScheduleCsv(const RankOrders& orders) {
  std::string out;
  for (const auto& order : orders) {
    for (size_t p = 0; p < order.size(); ++p) {
      if (p > 0) out += ',';
      out += ActionString(order[p]);
      if (order[p].overlapped()) out += kOverlapSuffix;
    }
    out += '\n';
  }
  return out;
}

}  // namespace perseus::schedules
