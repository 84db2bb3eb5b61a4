#include "perseus/planner/frontier_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "perseus/common/files.h"
#include "perseus/planner/problem_io.h"

namespace perseus::planner {
namespace {

std::string Format(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// Minimal reader for the CSV files this module writes (no quoting needed).
struct CsvFile {
  std::string path;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> lines;
};

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return Status::InvalidInput(path + ": cannot open (is this a `perseus plan --out` directory?)");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `expected_header`, or `alternative_header` when given (*which: 0 or 1).
Result<CsvFile> ParseCsv(const std::string& text, const std::string& path,
                         const std::string& expected_header,
                         const std::string& alternative_header = "", int* which = nullptr) {
  std::istringstream in(text);
  CsvFile file;
  file.path = path;
  std::string line;
  int line_no = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!header) {
      const bool alternative = !alternative_header.empty() && line == alternative_header;
      if (line != expected_header && !alternative) {
        return Status::InvalidInput(
            path + ":" + std::to_string(line_no) + ": expected header '" + expected_header + "'" +
            (alternative_header.empty() ? "" : " or '" + alternative_header + "'"));
      }
      if (which != nullptr) *which = alternative ? 1 : 0;
      header = true;
      continue;
    }
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {  // every field, empty ones too
      const size_t comma = line.find(',', start);
      fields.push_back(line.substr(start, comma == std::string::npos ? comma : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    file.rows.push_back(std::move(fields));
    file.lines.push_back(line_no);
  }
  if (!header) return Status::InvalidInput(path + ":1: empty file");
  return file;
}

bool ToDouble(const std::string& s, double* v) {
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size() && std::isfinite(*v);
}

bool ToInt(const std::string& s, int* v) {
  double d;
  if (!ToDouble(s, &d) || d != std::floor(d) || std::fabs(d) > 2e9) return false;
  *v = static_cast<int>(d);
  return true;
}

constexpr const char* kComputationsHeader = "id,gpu,stage,instruction,microbatch,order";
constexpr const char* kOverlapColumns = ",overlap_stage,overlap_instruction,overlap_microbatch";

}  // namespace

FrontierFiles FrontierToFiles(const Frontier& frontier) {
  const Problem& problem = frontier.problem();
  const Dag& dag = *problem.dag;
  FrontierFiles files;
  std::string& text = files.frontier_csv;
  text = "time,energy,model_time,model_energy\n";
  for (const FrontierPoint& p : frontier.points()) {
    text += Format(p.time_s) + "," + Format(p.energy_j) + "," + Format(p.model_time_s) + "," +
            Format(p.model_energy_j) + "\n";
  }

  std::vector<int> order(dag.num_nodes());
  for (const auto& gpu : dag.gpu_order()) {
    for (size_t k = 0; k < gpu.size(); ++k) order[gpu[k]] = static_cast<int>(k);
  }
  bool overlaps = false;
  for (const Computation& c : dag.nodes()) overlaps = overlaps || c.overlapped();
  std::string& comps = files.computations_csv;
  comps = std::string(kComputationsHeader) + (overlaps ? kOverlapColumns : "") + "\n";
  for (int i = 0; i < dag.num_nodes(); ++i) {
    const Computation& c = dag.node(i);
    comps += std::to_string(i) + "," + std::to_string(c.gpu) + "," + std::to_string(c.stage) + "," +
             std::string(InstructionName(c.instruction)) + "," + std::to_string(c.microbatch) +
             "," + std::to_string(order[i]);
    if (c.overlapped()) {
      comps += "," + std::to_string(c.overlap.stage) + "," +
               std::string(InstructionName(c.overlap.instruction)) + "," +
               std::to_string(c.overlap.microbatch);
    } else if (overlaps) {
      comps += ",,,";
    }
    comps += "\n";
  }

  std::string& plans = files.plans_csv;
  plans = "point,computation,frequency\n";
  Plan previous;
  for (size_t k = 0; k < frontier.size(); ++k) {
    Plan plan = frontier.PlanAt(k);
    for (size_t i = 0; i < plan.size(); ++i) {
      if (k == 0 || plan[i] != previous[i]) {
        plans += std::to_string(k) + "," + std::to_string(i) + "," +
                 std::to_string(problem.option(static_cast<int>(i), plan[i]).frequency_mhz) + "\n";
      }
    }
    previous = std::move(plan);
  }
  files.problem_json = ProblemToJson(problem);
  return files;
}

Status WriteFrontierDir(const Frontier& frontier, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::InvalidInput(dir + ": cannot create directory: " + ec.message());
  const std::filesystem::path base(dir);
  const FrontierFiles files = FrontierToFiles(frontier);
  Status s = WriteFileAtomically(base / "frontier.csv", files.frontier_csv);
  if (!s.ok()) return s;
  s = WriteFileAtomically(base / "computations.csv", files.computations_csv);
  if (!s.ok()) return s;
  s = WriteFileAtomically(base / "problem.json", files.problem_json);
  if (!s.ok()) return s;
  return WriteFileAtomically(base / "plans.csv", files.plans_csv);
}

Result<StoredFrontier> StoredFrontier::Parse(const FrontierFiles& files,
                                             const std::string& source) {
  const std::string prefix = source.empty() ? "" : source + "/";
  auto frontier_csv =
      ParseCsv(files.frontier_csv, prefix + "frontier.csv", "time,energy,model_time,model_energy");
  if (!frontier_csv.ok()) return frontier_csv.status();
  auto bad = [](const CsvFile& f, size_t row, const std::string& what) {
    return Status::InvalidInput(f.path + ":" + std::to_string(f.lines[row]) + ": " + what);
  };
  StoredFrontier out;
  for (size_t r = 0; r < frontier_csv->rows.size(); ++r) {
    const auto& row = frontier_csv->rows[r];
    FrontierPoint p;
    if (row.size() != 4 || !ToDouble(row[0], &p.time_s) || !ToDouble(row[1], &p.energy_j) ||
        !ToDouble(row[2], &p.model_time_s) || !ToDouble(row[3], &p.model_energy_j)) {
      return bad(*frontier_csv, r, "expected four numbers");
    }
    out.points_.push_back(p);
  }
  if (out.points_.empty()) return Status::InvalidInput(frontier_csv->path + ": no frontier points");

  int with_overlaps = 0;
  auto comps_csv =
      ParseCsv(files.computations_csv, prefix + "computations.csv", kComputationsHeader,
               std::string(kComputationsHeader) + kOverlapColumns, &with_overlaps);
  if (!comps_csv.ok()) return comps_csv.status();
  const size_t columns = with_overlaps ? 9 : 6;
  for (size_t r = 0; r < comps_csv->rows.size(); ++r) {
    const auto& row = comps_csv->rows[r];
    StoredComputation c;
    if (row.size() != columns || !ToInt(row[0], &c.id) || !ToInt(row[1], &c.gpu) ||
        !ToInt(row[2], &c.stage) || !ParseInstruction(row[3], &c.instruction) ||
        !ToInt(row[4], &c.microbatch) || !ToInt(row[5], &c.order)) {
      return bad(*comps_csv, r, "malformed computation row");
    }
    if (with_overlaps && !(row[6].empty() && row[7].empty() && row[8].empty())) {
      if (!ToInt(row[6], &c.overlap.stage) || c.overlap.stage < 0 ||
          !ParseInstruction(row[7], &c.overlap.instruction) ||
          !ToInt(row[8], &c.overlap.microbatch)) {
        return bad(*comps_csv, r,
                   "malformed overlap columns (expected stage, instruction, microbatch, or all "
                   "three empty)");
      }
    }
    if (c.id != static_cast<int>(r) || c.gpu < 0 || c.order < 0) {
      return bad(*comps_csv, r, "computation ids must be 0,1,2,... in order");
    }
    out.computations_.push_back(c);
  }

  auto plans_csv = ParseCsv(files.plans_csv, prefix + "plans.csv", "point,computation,frequency");
  if (!plans_csv.ok()) return plans_csv.status();
  const int num_points = static_cast<int>(out.points_.size());
  out.change_begin_.assign(out.points_.size() + 1, 0);
  int last_point = 0;
  std::vector<bool> seen(out.computations_.size(), false);
  for (size_t r = 0; r < plans_csv->rows.size(); ++r) {
    const auto& row = plans_csv->rows[r];
    int point, comp, freq;
    if (row.size() != 3 || !ToInt(row[0], &point) || !ToInt(row[1], &comp) ||
        !ToInt(row[2], &freq)) {
      return bad(*plans_csv, r, "expected three integers");
    }
    if (comp < 0 || comp >= static_cast<int>(out.computations_.size())) {
      return bad(*plans_csv, r, "unknown computation " + std::to_string(comp));
    }
    if (point < last_point || point >= num_points) {
      return bad(*plans_csv, r, "points must be in order and within the frontier");
    }
    if (freq <= 0) return bad(*plans_csv, r, "frequency must be positive");
    if (point == 0) seen[static_cast<size_t>(comp)] = true;
    for (int k = last_point + 1; k <= point; ++k) out.change_begin_[k] = out.changes_.size();
    last_point = point;
    out.changes_.emplace_back(comp, freq);
  }
  for (int k = last_point + 1; k <= num_points; ++k) out.change_begin_[k] = out.changes_.size();
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) {
      return Status::InvalidInput(
          plans_csv->path + ": point 0 gives no frequency for computation " + std::to_string(i));
    }
  }
  if (!files.problem_json.empty()) {
    std::vector<Computation> computations;
    for (const StoredComputation& c : out.computations_) {
      computations.emplace_back(c.gpu, c.stage, c.instruction, c.microbatch, c.overlap);
    }
    const std::string path = prefix + "problem.json";
    auto problem = ParseProblemJson(files.problem_json, path, computations);
    if (!problem.ok()) return problem.status();
    const Dag& dag = *(*problem)->dag;
    for (const auto& order : dag.gpu_order()) {
      for (size_t k = 0; k < order.size(); ++k) {
        if (out.computations_[static_cast<size_t>(order[k])].order != static_cast<int>(k)) {
          return Status::InvalidInput(comps_csv->path + ": computation " +
                                      std::to_string(order[k]) +
                                      "'s order does not match the ids' order on its GPU "
                                      "(problem.json needs it)");
        }
      }
    }
    for (size_t r = 0; r < out.changes_.size(); ++r) {
      const auto [comp, freq] = out.changes_[r];
      const auto& options = (*problem)->set(comp).options;
      if (std::none_of(options.begin(), options.end(),
                       [f = freq](const Option& o) { return o.frequency_mhz == f; })) {
        return bad(*plans_csv, r,
                   std::to_string(freq) + " MHz is not one of computation " + std::to_string(comp) +
                       "'s options in " + path);
      }
    }
    out.problem_ = std::move(problem).value();
  }
  return out;
}

Result<StoredFrontier> StoredFrontier::ReadDir(const std::string& dir) {
  const std::filesystem::path base(dir);
  FrontierFiles files;
  const std::pair<const char*, std::string*> parts[] = {
      {"frontier.csv", &files.frontier_csv},
      {"computations.csv", &files.computations_csv},
      {"plans.csv", &files.plans_csv}};
  for (const auto& [name, text] : parts) {
    auto read = ReadText((base / name).string());
    if (!read.ok()) return read.status();
    *text = std::move(read).value();
  }
  std::error_code ec;
  if (std::filesystem::exists(base / "problem.json", ec)) {  // optional: older directories
    auto read = ReadText((base / "problem.json").string());
    if (!read.ok()) return read.status();
    files.problem_json = std::move(read).value();
  }
  return Parse(files, dir);
}

std::optional<size_t> StoredFrontier::IndexForDeadline(double deadline_s) const {
  std::optional<size_t> best;
  for (size_t k = 0; k < points_.size(); ++k) {
    if (points_[k].time_s <= deadline_s &&
        (!best || points_[k].energy_j < points_[*best].energy_j)) {
      best = k;
    }
  }
  return best;
}

size_t StoredFrontier::TMinIndex() const {
  size_t best = 0;
  for (size_t k = 1; k < points_.size(); ++k) {
    const FrontierPoint& p = points_[k];
    const FrontierPoint& b = points_[best];
    if (p.time_s < b.time_s || (p.time_s == b.time_s && p.energy_j < b.energy_j)) best = k;
  }
  return best;
}

std::vector<int> StoredFrontier::FrequenciesAt(size_t point) const {
  std::vector<int> frequency(computations_.size(), 0);
  for (size_t c = 0; c < change_begin_[point + 1]; ++c) {
    frequency[static_cast<size_t>(changes_[c].first)] = changes_[c].second;
  }
  return frequency;
}

std::optional<StoredPlan> StoredFrontier::PlanForDeadline(double deadline_s,
                                                          const ImproveOptions& options) const {
  StoredPlan plan;
  if (problem_ == nullptr) {
    const auto best = IndexForDeadline(deadline_s);
    if (!best) return std::nullopt;
    plan.point = *best;
    plan.figures = points_[*best];
    plan.frequency_mhz = FrequenciesAt(*best);
    return plan;
  }
  const Problem& problem = *problem_;
  auto options_at = [&](size_t k) {
    const std::vector<int> frequency = FrequenciesAt(k);
    Plan p(frequency.size(), 0);
    for (size_t i = 0; i < p.size(); ++i) {
      const auto& set = problem.set(static_cast<int>(i)).options;
      for (size_t o = 0; o < set.size(); ++o) {
        if (set[o].frequency_mhz == frequency[i]) p[i] = static_cast<int>(o);
      }
    }
    return p;
  };
  auto found = planner::PlanForDeadline(problem, points_, options_at, deadline_s, options);
  if (!found) return std::nullopt;
  plan.point = found->base_point;
  plan.figures = points_[found->base_point];
  plan.figures.time_s = found->result.figures.time_s;
  plan.figures.energy_j = found->result.figures.energy_j;
  plan.improved = true;
  plan.moves = found->result.moves;
  plan.frequency_mhz.resize(found->result.plan.size());
  for (size_t i = 0; i < found->result.plan.size(); ++i) {
    plan.frequency_mhz[i] =
        problem.option(static_cast<int>(i), found->result.plan[i]).frequency_mhz;
  }
  return plan;
}

Result<StoredPlan> ReadPlanForDeadline(const std::string& dir, double deadline_s) {
  auto frontier = StoredFrontier::ReadDir(dir);
  if (!frontier.ok()) return frontier.status();
  auto plan = frontier->PlanForDeadline(deadline_s);
  if (!plan) {
    return Status::NotFound("no plan finishes by " + Format(deadline_s) +
                            " s; the fastest frontier point takes " +
                            Format(frontier->points()[frontier->TMinIndex()].time_s) + " s");
  }
  plan->computations = frontier->computations();
  return std::move(plan).value();
}

}  // namespace perseus::planner
