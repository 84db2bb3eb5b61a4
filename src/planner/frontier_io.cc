#include "perseus/planner/frontier_io.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "perseus/common/files.h"

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

Result<CsvFile> ReadCsv(const std::string& path, const std::string& expected_header) {
  std::ifstream in(path);
  if (!in)
    return Status::InvalidInput(path + ": cannot open (is this a `perseus plan --out` directory?)");
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
      if (line != expected_header) {
        return Status::InvalidInput(path + ":" + std::to_string(line_no) + ": expected header '" +
                                    expected_header + "'");
      }
      header = true;
      continue;
    }
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, ',')) fields.push_back(f);
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

}  // namespace

Status WriteFrontierDir(const Frontier& frontier, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::InvalidInput(dir + ": cannot create directory: " + ec.message());
  const std::filesystem::path base(dir);
  const Problem& problem = frontier.problem();
  const Dag& dag = *problem.dag;

  std::string text = "time,energy,model_time,model_energy\n";
  for (const FrontierPoint& p : frontier.points()) {
    text += Format(p.time_s) + "," + Format(p.energy_j) + "," + Format(p.model_time_s) + "," +
            Format(p.model_energy_j) + "\n";
  }
  Status s = WriteFileAtomically(base / "frontier.csv", text);
  if (!s.ok()) return s;

  std::vector<int> order(dag.num_nodes());
  for (const auto& gpu : dag.gpu_order()) {
    for (size_t k = 0; k < gpu.size(); ++k) order[gpu[k]] = static_cast<int>(k);
  }
  text = "id,gpu,stage,instruction,microbatch,order\n";
  for (int i = 0; i < dag.num_nodes(); ++i) {
    const Computation& c = dag.node(i);
    text += std::to_string(i) + "," + std::to_string(c.gpu) + "," + std::to_string(c.stage) + "," +
            std::string(InstructionName(c.instruction)) + "," + std::to_string(c.microbatch) + "," +
            std::to_string(order[i]) + "\n";
  }
  s = WriteFileAtomically(base / "computations.csv", text);
  if (!s.ok()) return s;

  text = "point,computation,frequency\n";
  Plan previous;
  for (size_t k = 0; k < frontier.size(); ++k) {
    Plan plan = frontier.PlanAt(k);
    for (size_t i = 0; i < plan.size(); ++i) {
      if (k == 0 || plan[i] != previous[i]) {
        text += std::to_string(k) + "," + std::to_string(i) + "," +
                std::to_string(problem.option(static_cast<int>(i), plan[i]).frequency_mhz) + "\n";
      }
    }
    previous = std::move(plan);
  }
  return WriteFileAtomically(base / "plans.csv", text);
}

Result<StoredPlan> ReadPlanForDeadline(const std::string& dir, double deadline_s) {
  const std::filesystem::path base(dir);
  auto frontier_csv =
      ReadCsv((base / "frontier.csv").string(), "time,energy,model_time,model_energy");
  if (!frontier_csv.ok()) return frontier_csv.status();
  auto bad = [](const CsvFile& f, size_t row, const std::string& what) {
    return Status::InvalidInput(f.path + ":" + std::to_string(f.lines[row]) + ": " + what);
  };
  std::vector<FrontierPoint> points;
  for (size_t r = 0; r < frontier_csv->rows.size(); ++r) {
    const auto& row = frontier_csv->rows[r];
    FrontierPoint p;
    if (row.size() != 4 || !ToDouble(row[0], &p.time_s) || !ToDouble(row[1], &p.energy_j) ||
        !ToDouble(row[2], &p.model_time_s) || !ToDouble(row[3], &p.model_energy_j)) {
      return bad(*frontier_csv, r, "expected four numbers");
    }
    points.push_back(p);
  }
  if (points.empty()) return Status::InvalidInput(frontier_csv->path + ": no frontier points");
  // Lowest realized energy among points meeting the deadline.
  long best = -1;
  double fastest = points[0].time_s;
  for (size_t k = 0; k < points.size(); ++k) {
    fastest = std::min(fastest, points[k].time_s);
    if (points[k].time_s <= deadline_s &&
        (best < 0 || points[k].energy_j < points[best].energy_j)) {
      best = static_cast<long>(k);
    }
  }
  if (best < 0) {
    return Status::NotFound("no plan finishes by " + Format(deadline_s) +
                            " s; the fastest frontier point takes " + Format(fastest) + " s");
  }

  auto comps_csv =
      ReadCsv((base / "computations.csv").string(), "id,gpu,stage,instruction,microbatch,order");
  if (!comps_csv.ok()) return comps_csv.status();
  StoredPlan plan;
  plan.point = static_cast<size_t>(best);
  plan.figures = points[best];
  for (size_t r = 0; r < comps_csv->rows.size(); ++r) {
    const auto& row = comps_csv->rows[r];
    StoredComputation c;
    if (row.size() != 6 || !ToInt(row[0], &c.id) || !ToInt(row[1], &c.gpu) ||
        !ToInt(row[2], &c.stage) || !ParseInstruction(row[3], &c.instruction) ||
        !ToInt(row[4], &c.microbatch) || !ToInt(row[5], &c.order)) {
      return bad(*comps_csv, r, "malformed computation row");
    }
    if (c.id != static_cast<int>(r) || c.gpu < 0 || c.order < 0) {
      return bad(*comps_csv, r, "computation ids must be 0,1,2,... in order");
    }
    plan.computations.push_back(c);
  }
  plan.frequency_mhz.assign(plan.computations.size(), 0);

  auto plans_csv = ReadCsv((base / "plans.csv").string(), "point,computation,frequency");
  if (!plans_csv.ok()) return plans_csv.status();
  for (size_t r = 0; r < plans_csv->rows.size(); ++r) {
    const auto& row = plans_csv->rows[r];
    int point, comp, freq;
    if (row.size() != 3 || !ToInt(row[0], &point) || !ToInt(row[1], &comp) ||
        !ToInt(row[2], &freq)) {
      return bad(*plans_csv, r, "expected three integers");
    }
    if (comp < 0 || comp >= static_cast<int>(plan.computations.size())) {
      return bad(*plans_csv, r, "unknown computation " + std::to_string(comp));
    }
    if (point > best) break;  // rows are in point order
    plan.frequency_mhz[comp] = freq;
  }
  for (size_t i = 0; i < plan.frequency_mhz.size(); ++i) {
    if (plan.frequency_mhz[i] <= 0) {
      return Status::InvalidInput(
          plans_csv->path + ": point 0 gives no frequency for computation " + std::to_string(i));
    }
  }
  return plan;
}

}  // namespace perseus::planner
