#include "perseus/planner/frontier_io.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <sstream>

#include "nlohmann/json.hpp"
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

// The files plan.json lists, in write order.
constexpr const char* kDataFiles[] = {"frontier.csv", "computations.csv", "problem.json",
                                      "plans.csv"};
constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 20;
constexpr const char* kRedo =
    "the directory was changed or not written completely; run perseus plan --out again";

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string NewGeneration() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
  std::random_device device;
  const uint64_t bits =
      (uint64_t{device()} << 32) ^ device() ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  char out[96];
  std::snprintf(out, sizeof(out), "%s-%d-%016llx", stamp, static_cast<int>(::getpid()),
                static_cast<unsigned long long>(bits));
  return out;
}

nlohmann::json JobJson(const PlanJobRecord& j) {
  return {{"profile", j.profile_path},
          {"profile_sha256", j.profile_sha256},
          {"schedule", j.schedule},
          {"stages", j.stages},
          {"microbatches", j.microbatches},
          {"model_stages", j.model_stages},
          {"virtual_stages", j.virtual_stages},
          {"tp", j.tp},
          {"dp", j.dp},
          {"gpus", j.gpus},
          {"blocking_power_w", j.blocking_power_w},
          {"blocking_power_source", j.blocking_power_source},
          {"unit_time_s", j.unit_time_s},
          {"cost_model", j.cost_model},
          {"time_scale", j.time_scale},
          {"energy_scale", j.energy_scale}};
}

std::string ManifestText(const PlanManifest& m) {
  nlohmann::json files = nlohmann::json::array();
  for (const PlanDirFile& f : m.files) {
    files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
  }
  nlohmann::json out = {{"format", "perseus plan --out"},
                        {"format_version", m.format_version},
                        {"generation", m.generation},
                        {"created_utc", m.created_utc},
                        {"perseus_version", m.perseus_version},
                        {"files", files},
                        {"job", JobJson(m.job)}};
  // plan.json's own checksum: of its compact form without this field, so a
  // changed byte anywhere in it (the job's record too) is caught.
  out["manifest_sha256"] = Sha256Hex(out.dump());
  return out.dump(2) + "\n";
}

// plan.json's text to a manifest; `path` names it in messages.
Result<PlanManifest> ParseManifest(const std::string& text, const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidInput(path + ": not a valid JSON object: " + kRedo);
  }
  auto bad = [&](const std::string& field, const char* what) {
    return Status::InvalidInput(path + ": '" + field + "' is missing or not " + what + ": " +
                                kRedo);
  };
  if (!j.contains("manifest_sha256") || !j["manifest_sha256"].is_string()) {
    return bad("manifest_sha256", "a string");
  }
  const std::string own = j["manifest_sha256"].get<std::string>();
  j.erase("manifest_sha256");
  if (Sha256Hex(j.dump()) != own) {
    return Status::InvalidInput(path +
                                ": its manifest_sha256 does not match its contents: " + kRedo);
  }
  PlanManifest m;
  if (!j.contains("format_version") || !j["format_version"].is_number_integer()) {
    return bad("format_version", "an integer");
  }
  m.format_version = j["format_version"].get<int>();
  if (m.format_version != PlanManifest::kFormatVersion) {
    return Status::InvalidInput(path + ": format_version " + std::to_string(m.format_version) +
                                " is not " + std::to_string(PlanManifest::kFormatVersion) +
                                ": written by another perseus version; run perseus plan --out "
                                "again");
  }
  auto string_field = [&](const nlohmann::json& o, const std::string& prefix, const char* key,
                          std::string* out) -> std::optional<Status> {
    if (!o.contains(key) || !o[key].is_string()) return bad(prefix + key, "a string");
    *out = o[key].get<std::string>();
    return std::nullopt;
  };
  auto int_field = [&](const nlohmann::json& o, const std::string& prefix, const char* key,
                       int* out) -> std::optional<Status> {
    if (!o.contains(key) || !o[key].is_number_integer()) return bad(prefix + key, "an integer");
    const int64_t v = o[key].get<int64_t>();
    if (v < 0 || v > 2'000'000'000) return bad(prefix + key, "a non-negative integer");
    *out = static_cast<int>(v);
    return std::nullopt;
  };
  auto number_field = [&](const nlohmann::json& o, const std::string& prefix, const char* key,
                          double* out) -> std::optional<Status> {
    if (!o.contains(key) || !o[key].is_number()) return bad(prefix + key, "a number");
    *out = o[key].get<double>();
    if (!std::isfinite(*out)) return bad(prefix + key, "a finite number");
    return std::nullopt;
  };
  if (auto s = string_field(j, "", "generation", &m.generation)) return *s;
  if (m.generation.empty() || m.generation.size() > 200) return bad("generation", "an id");
  if (auto s = string_field(j, "", "created_utc", &m.created_utc)) return *s;
  if (auto s = string_field(j, "", "perseus_version", &m.perseus_version)) return *s;
  if (!j.contains("files") || !j["files"].is_array()) return bad("files", "a list");
  for (const auto& f : j["files"]) {
    if (!f.is_object()) return bad("files[]", "an object");
    PlanDirFile file;
    if (auto s = string_field(f, "files[].", "name", &file.name)) return *s;
    if (!f.contains("size") || !f["size"].is_number_unsigned()) {
      return bad("files[].size", "a non-negative integer");
    }
    file.size = f["size"].get<uint64_t>();
    if (auto s = string_field(f, "files[].", "sha256", &file.sha256)) return *s;
    const bool known = std::any_of(std::begin(kDataFiles), std::end(kDataFiles),
                                   [&](const char* n) { return file.name == n; });
    if (!known) {
      return Status::InvalidInput(path + ": lists '" + FieldText(file.name) +
                                  "', which is not a file of a plan directory: " + kRedo);
    }
    if (std::any_of(m.files.begin(), m.files.end(),
                    [&](const PlanDirFile& g) { return g.name == file.name; })) {
      return Status::InvalidInput(path + ": lists " + file.name + " twice: " + kRedo);
    }
    if (file.sha256.size() != 64 ||
        file.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return bad("files[].sha256", "64 hex digits");
    }
    if (file.size > kMaxPlanFileBytes) return bad("files[].size", "a plausible size");
    m.files.push_back(std::move(file));
  }
  for (const char* name : kDataFiles) {
    if (std::none_of(m.files.begin(), m.files.end(),
                     [&](const PlanDirFile& f) { return f.name == name; })) {
      return Status::InvalidInput(path + ": does not list " + name + ": " + kRedo);
    }
  }
  if (!j.contains("job") || !j["job"].is_object()) return bad("job", "an object");
  const nlohmann::json& o = j["job"];
  PlanJobRecord& r = m.job;
  const std::string p = "job.";
  for (auto [key, out] :
       {std::pair{"profile", &r.profile_path}, std::pair{"profile_sha256", &r.profile_sha256},
        std::pair{"schedule", &r.schedule},
        std::pair{"blocking_power_source", &r.blocking_power_source},
        std::pair{"cost_model", &r.cost_model}}) {
    if (auto s = string_field(o, p, key, out)) return *s;
  }
  for (auto [key, out] :
       {std::pair{"stages", &r.stages}, std::pair{"microbatches", &r.microbatches},
        std::pair{"model_stages", &r.model_stages}, std::pair{"virtual_stages", &r.virtual_stages},
        std::pair{"tp", &r.tp}, std::pair{"dp", &r.dp}, std::pair{"gpus", &r.gpus}}) {
    if (auto s = int_field(o, p, key, out)) return *s;
  }
  for (auto [key, out] :
       {std::pair{"blocking_power_w", &r.blocking_power_w},
        std::pair{"unit_time_s", &r.unit_time_s}, std::pair{"time_scale", &r.time_scale},
        std::pair{"energy_scale", &r.energy_scale}}) {
    if (auto s = number_field(o, p, key, out)) return *s;
  }
  return m;
}

}  // namespace

std::string PlanJobRecordJson(const PlanJobRecord& job) { return JobJson(job).dump(); }

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string TimeText(double seconds) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), seconds);
  if (ec != std::errc()) return Format(seconds);
  return std::string(buf, end);
}

Result<DeadlineText> ParseDeadlineText(std::string_view text) {
  const auto refuse = [&] {
    return Status::InvalidInput("--time '" + FieldText(text) +
                                "' is not a positive decimal number of seconds (e.g. 12.3456)");
  };
  if (!IsDecimalNumberText(text)) return refuse();
  DeadlineText out;
  const std::string buf(text);
  out.seconds = std::strtod(buf.c_str(), nullptr);
  if (!std::isfinite(out.seconds) || out.seconds <= 0) return refuse();
  const size_t e = buf.find_first_of("eE");
  const std::string mantissa = buf.substr(0, e);
  const size_t point = mantissa.find('.');
  if (point == std::string::npos) return out;  // a whole number: exact
  const int decimals = static_cast<int>(mantissa.size() - point - 1);
  const int exponent = e == std::string::npos ? 0 : std::atoi(buf.c_str() + e + 1);
  // Half a unit of the last digit written, and a hair more so that the time
  // that printed as this text is never just past it by a rounding of its own.
  out.tolerance_s = 0.5 * std::pow(10.0, exponent - decimals) * (1 + 1e-9);
  return out;
}

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

namespace {

// After a complete write: the temporary files a killed write left
// (NAME.tmp.GENERATION of the directory's own file names, not this
// generation's), once they are older than kStaleTemporaryAge: a write still
// running renames each of its files seconds after creating it. Best effort:
// a file that cannot be removed stays and changes nothing.
constexpr std::chrono::seconds kStaleTemporaryAge{60};

void RemoveStaleTemporaries(const std::filesystem::path& dir, const std::string& generation) {
  static constexpr const char* kNames[] = {"frontier.csv", "computations.csv", "problem.json",
                                           "plans.csv", kPlanManifestName};
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    bool stale_name = false;
    for (const char* part : kNames) {
      const std::string prefix = std::string(part) + ".tmp.";
      if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
          name.compare(prefix.size(), std::string::npos, generation) != 0) {
        stale_name = true;
      }
    }
    if (!stale_name) continue;
    std::error_code file_ec;
    const auto written = std::filesystem::last_write_time(it->path(), file_ec);
    if (file_ec || now - written < kStaleTemporaryAge) continue;
    std::filesystem::remove(it->path(), file_ec);
  }
}

}  // namespace

Result<PlanManifest> WritePlanFiles(const FrontierFiles& files, const std::string& dir,
                                    const PlanJobRecord& job, const std::string& perseus_version,
                                    const WriteDirOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::InvalidInput(dir + ": cannot create directory: " + ec.message());
  const std::filesystem::path base(dir);
  PlanManifest manifest;
  manifest.generation = NewGeneration();
  manifest.created_utc = UtcNow();
  manifest.perseus_version = perseus_version;
  manifest.job = job;
  const std::pair<const char*, const std::string*> parts[] = {
      {"frontier.csv", &files.frontier_csv},
      {"computations.csv", &files.computations_csv},
      {"problem.json", &files.problem_json},
      {"plans.csv", &files.plans_csv}};
  for (const auto& [name, text] : parts) {
    manifest.files.push_back({name, text->size(), Sha256Hex(*text)});
  }
  auto step = [&](const std::filesystem::path& path, const std::string& text,
                  const std::string& name) -> Status {
    std::filesystem::path tmp = path;
    tmp += ".tmp." + manifest.generation;
    if (Status s = WriteDurably(tmp, text); !s.ok()) return s;
    std::error_code rename_ec;
    std::filesystem::rename(tmp, path, rename_ec);
    if (rename_ec) {
      const std::string why = rename_ec.message();
      std::filesystem::remove(tmp, rename_ec);
      return Status::Internal(path.string() + ": " + why);
    }
    if (options.continue_after && !options.continue_after(name)) {
      return Status::Internal("stopped after " + name + " (test hook)");
    }
    return Status::Ok();
  };
  for (const auto& [name, text] : parts) {
    if (Status s = step(base / name, *text, name); !s.ok()) return s;
  }
  // The data files' renames reach the disk before the manifest that names them.
  if (Status s = SyncDirectory(base); !s.ok()) return s;
  if (Status s = step(base / kPlanManifestName, ManifestText(manifest), kPlanManifestName);
      !s.ok()) {
    return s;
  }
  if (Status s = SyncDirectory(base); !s.ok()) return s;
  RemoveStaleTemporaries(base, manifest.generation);
  return manifest;
}

Result<PlanManifest> WriteFrontierDir(const Frontier& frontier, const std::string& dir,
                                      const PlanJobRecord& job, const std::string& perseus_version,
                                      const WriteDirOptions& options) {
  return WritePlanFiles(FrontierToFiles(frontier), dir, job, perseus_version, options);
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

Result<PlanDir> ReadPlanDir(const std::string& dir) {
  const std::filesystem::path base(dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(base, ec)) {
    return Status::InvalidInput(dir +
                                ": not a directory (expected one written by perseus plan "
                                "--out)");
  }
  const std::string manifest_path = (base / kPlanManifestName).string();
  if (!std::filesystem::exists(std::filesystem::symlink_status(base / kPlanManifestName, ec))) {
    const bool has_files = std::filesystem::exists(base / "frontier.csv", ec) ||
                           std::filesystem::exists(base / "plans.csv", ec);
    if (!has_files) {
      return Status::InvalidInput(dir + ": not a perseus plan --out directory (no " +
                                  kPlanManifestName + ")");
    }
    return Status::InvalidInput(manifest_path +
                                ": missing: the directory was written by an older perseus "
                                "(before plan.json) or not written completely; run perseus plan "
                                "--out again");
  }
  auto manifest_text = ReadRegularFile(manifest_path, kMaxManifestBytes, "plan manifest");
  if (!manifest_text.ok()) {
    return Status::InvalidInput(manifest_text.status().message() + ": " + kRedo);
  }
  auto manifest = ParseManifest(*manifest_text, manifest_path);
  if (!manifest.ok()) return manifest.status();
  const std::string generation = "plan.json (generation " + manifest->generation + ")";
  FrontierFiles files;
  for (const PlanDirFile& f : manifest->files) {
    const std::string path = (base / f.name).string();
    // One byte more than listed: a longer file is told apart from a listed one.
    auto text = ReadRegularFile(path, f.size + 1, "plan file");
    if (!text.ok()) {
      if (text.status().code() == StatusCode::kNotFound) {
        return Status::InvalidInput(path + ": missing, but listed in " + generation + ": " + kRedo);
      }
      if (text.status().message().find("is larger than") != std::string::npos) {
        return Status::InvalidInput(path + ": larger than the " + std::to_string(f.size) +
                                    " bytes " + generation + " lists: " + kRedo);
      }
      return Status::InvalidInput(text.status().message() + ": " + kRedo);
    }
    if (text->size() != f.size) {
      return Status::InvalidInput(path + ": " + std::to_string(text->size()) + " bytes, but " +
                                  generation + " lists " + std::to_string(f.size) + ": " + kRedo);
    }
    if (Sha256Hex(*text) != f.sha256) {
      return Status::InvalidInput(path + ": checksum does not match " + generation + ": " + kRedo);
    }
    std::string* slot = f.name == "frontier.csv"       ? &files.frontier_csv
                        : f.name == "computations.csv" ? &files.computations_csv
                        : f.name == "plans.csv"        ? &files.plans_csv
                                                       : &files.problem_json;
    *slot = std::move(text).value();
  }
  auto frontier = StoredFrontier::Parse(files, dir);
  if (!frontier.ok()) return frontier.status();
  return PlanDir{std::move(manifest).value(), std::move(frontier).value()};
}

Result<StoredFrontier> StoredFrontier::ReadDir(const std::string& dir) {
  auto read = ReadPlanDir(dir);
  if (!read.ok()) return read.status();
  return std::move(read->frontier);
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

size_t StoredFrontier::TStarIndex() const {
  size_t best = 0;
  for (size_t k = 1; k < points_.size(); ++k) {
    if (points_[k].energy_j < points_[best].energy_j) best = k;
  }
  return best;
}

StoredPlan PlanAtPoint(const StoredFrontier& frontier, size_t point) {
  StoredPlan plan;
  plan.point = point;
  plan.figures = frontier.points()[point];
  plan.frequency_mhz = frontier.FrequenciesAt(point);
  plan.computations = frontier.computations();
  return plan;
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
    return Status::NotFound("no plan finishes by " + TimeText(deadline_s) +
                            " s; the fastest frontier point takes " +
                            TimeText(frontier->points()[frontier->TMinIndex()].time_s) +
                            " s (perseus show-plan DIR --point t_min)");
  }
  plan->computations = frontier->computations();
  return std::move(plan).value();
}

}  // namespace perseus::planner
