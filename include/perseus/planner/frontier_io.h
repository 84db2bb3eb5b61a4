// Writing a frontier to a directory and reading plans back.
//
// Layout of DIR:
//   frontier.csv      time,energy,model_time,model_energy   (realized first; solver
//                     order: slowest first; row k is point k)
//   computations.csv  id,gpu,stage,instruction,microbatch,order   (order = position
//                     in its GPU's execution order); a schedule with overlapped
//                     forward+backward computations (DualPipeV) adds the columns
//                     overlap_stage,overlap_instruction,overlap_microbatch (the
//                     backward half; empty for other computations)
//   plans.csv         point,computation,frequency   point 0 lists every computation;
//                     point k > 0 lists only the computations whose frequency differs
//                     from point k-1, so large frontiers stay small on disk.
//   problem.json      each computation's measured options and dependencies, and the
//                     blocking power (problem_io.h): with it, plans for deadlines between
//                     the points are improved by the discrete local search (improve.h).
//   plan.json         the manifest, written last (the commit point): the format
//                     version, a generation id, the creation time (UTC), the perseus
//                     version, every other file's name, size and SHA-256, and the job
//                     that was planned (PlanJobRecord). Every reader verifies it
//                     (ReadPlanDir) and refuses a directory whose files do not match it:
//                     a file changed, truncated or from another run, a torn write.
//
// Writing (WriteFrontierDir): every file goes to NAME.tmp.GENERATION, is
// flushed (fsync) and renamed over NAME, the directory is flushed, and then
// plan.json the same way. A run killed at any moment leaves the old complete
// generation (killed before the first rename), the new one (after plan.json's
// rename), or files that do not match plan.json: refused, never read as a
// wrong plan. Stale NAME.tmp.* files are ignored by readers.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/improve.h"

namespace perseus::planner {

// The three files' contents.
struct FrontierFiles {
  std::string frontier_csv, computations_csv, plans_csv;
  std::string problem_json;  // may be empty: no improvement past the points
};
FrontierFiles FrontierToFiles(const Frontier& frontier);

// SHA-256 of `bytes`, 64 lowercase hex digits (OpenSSL's libcrypto).
std::string Sha256Hex(std::string_view bytes);

// The job a plan directory was planned for, as plan.json records it.
struct PlanJobRecord {
  std::string profile_path;
  std::string profile_sha256;  // of the bytes planned
  std::string schedule;        // built-in name or "file:PATH"
  int stages = 0, microbatches = 0, model_stages = 0, virtual_stages = 1;
  int tp = 1, dp = 1, gpus = 0;
  double blocking_power_w = 0;        // per GPU
  std::string blocking_power_source;  // as job::PreparedJob says it ("given", ...)
  double unit_time_s = 0;
  std::string cost_model;
  double time_scale = 1, energy_scale = 1;
};

struct PlanDirFile {
  std::string name;
  uint64_t size = 0;
  std::string sha256;
};

// plan.json.
struct PlanManifest {
  static constexpr int kFormatVersion = 1;
  int format_version = kFormatVersion;
  std::string generation;   // UTC time, pid and 64 random bits: unique per write
  std::string created_utc;  // 2026-12-01T23:45:07Z
  std::string perseus_version;
  PlanJobRecord job;
  std::vector<PlanDirFile> files;  // frontier.csv, computations.csv, plans.csv, problem.json
};
inline constexpr const char* kPlanManifestName = "plan.json";
// The most a plan directory's file may hold (plans.csv of a large frontier).
inline constexpr uint64_t kMaxPlanFileBytes = uint64_t{4} << 30;

// A test hook: called after each step of the write ("frontier.csv" after
// that file's rename, ..., "plan.json" last); returning false stops the write
// there as a kill between two steps would (the later steps' files are not
// written).
struct WriteDirOptions {
  std::function<bool(const std::string& step)> continue_after;
};

// The job record as plan.json holds it (a JSON object's text), for output.
std::string PlanJobRecordJson(const PlanJobRecord& job);

// Writes the four files and then plan.json into DIR (created if missing);
// `perseus_version` goes into the manifest. Returns the manifest written.
// Once plan.json is on disk, removes the temporary files (NAME.tmp.*) that
// earlier, killed writes left there, if older than a minute.
Result<PlanManifest> WritePlanFiles(const FrontierFiles& files, const std::string& dir,
                                    const PlanJobRecord& job, const std::string& perseus_version,
                                    const WriteDirOptions& options = {});
Result<PlanManifest> WriteFrontierDir(const Frontier& frontier, const std::string& dir,
                                      const PlanJobRecord& job, const std::string& perseus_version,
                                      const WriteDirOptions& options = {});

struct StoredComputation {
  int id = 0, gpu = 0, stage = 0, microbatch = 0, order = 0;
  Instruction instruction = Instruction::kForward;
  Part overlap;  // the backward half of an overlapped forward+backward
  bool overlapped() const { return overlap.stage >= 0; }
};

// A plan read back from a frontier directory.
struct StoredPlan {
  size_t point = 0;  // the frontier point (improved plans: the one the search started from)
  // Realized time and energy of the plan; model figures: the point's.
  FrontierPoint figures;
  bool improved = false;  // by the discrete local search (needs problem.json)
  int64_t moves = 0;      // the search's accepted moves
  std::vector<StoredComputation> computations;
  std::vector<int> frequency_mhz;  // per computation id
};

// A frontier read back from its files: the points, the computations, and
// every point's plan as frequencies (without the planning problem).
class StoredFrontier {
 public:
  // `source` names the files in messages (e.g. a directory).
  static Result<StoredFrontier> Parse(const FrontierFiles& files, const std::string& source);
  // ReadPlanDir(dir)'s frontier: verified against plan.json.
  static Result<StoredFrontier> ReadDir(const std::string& dir);

  const std::vector<FrontierPoint>& points() const { return points_; }
  const std::vector<StoredComputation>& computations() const { return computations_; }
  // The lowest-energy point whose realized time is <= deadline_s.
  std::optional<size_t> IndexForDeadline(double deadline_s) const;
  // The lowest-energy point among the fastest ones.
  size_t TMinIndex() const;
  // The lowest-energy point.
  size_t TStarIndex() const;
  // Frequency of every computation (by id) at point k: O(changes up to k).
  std::vector<int> FrequenciesAt(size_t point) const;
  // The problem read from problem.json; null without one.
  const std::shared_ptr<const Problem>& problem() const { return problem_; }
  // The plan for deadline_s: with a problem, the lowest-objective point for
  // it improved by PlanForDeadline (improve.h); without one, the point as
  // stored. nullopt if no point meets the deadline. `computations` is left
  // empty (see computations()).
  std::optional<StoredPlan> PlanForDeadline(double deadline_s,
                                            const ImproveOptions& options = {}) const;

 private:
  std::vector<FrontierPoint> points_;
  std::vector<StoredComputation> computations_;
  // Plan changes in point order: point k's are [change_begin_[k], change_begin_[k+1]).
  std::vector<size_t> change_begin_;
  std::vector<std::pair<int, int>> changes_;  // (computation, frequency)
  std::shared_ptr<const Problem> problem_;
};

// A plan directory read back and verified.
struct PlanDir {
  PlanManifest manifest;
  StoredFrontier frontier;
};
// Reads DIR/plan.json, checks every file it lists (present, a regular file,
// its size and SHA-256), then parses them. Any mismatch is kInvalidInput with
// one line naming the file and the problem, e.g. "DIR/plans.csv: checksum does
// not match plan.json (generation G): the directory was changed or not written
// completely; run perseus plan --out again". A directory without plan.json
// (written before it existed, or not completely) is refused the same way.
Result<PlanDir> ReadPlanDir(const std::string& dir);

// The stored plan of point k (no search): its figures and frequencies.
StoredPlan PlanAtPoint(const StoredFrontier& frontier, size_t point);

// Reads DIR (ReadPlanDir) and returns the plan for deadline_s:
// StoredFrontier::PlanForDeadline (own-time objective). kInvalidInput for a
// malformed or inconsistent directory; kNotFound if no point meets the deadline.
Result<StoredPlan> ReadPlanForDeadline(const std::string& dir, double deadline_s);

// Times as perseus prints them for reading back: the shortest text that
// reads back as the same double ("12.345678901234567", "0.1").
std::string TimeText(double seconds);

// A deadline as typed (`show-plan --time T`): a positive decimal number of
// seconds. A time written with d decimals stands for every time that rounds
// to it: tolerance_s is half a unit of its last decimal (12.3456: 5e-5 s;
// 1.5e1: 0.5 s), 0 for a whole number written without a point ("10": 10 s
// exactly). So the 4-decimal T_min of `perseus plan`'s table, typed back,
// selects the T_min point.
struct DeadlineText {
  double seconds = 0;
  double tolerance_s = 0;
};
Result<DeadlineText> ParseDeadlineText(std::string_view text);

}  // namespace perseus::planner
