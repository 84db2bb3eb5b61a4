// The coordinator's logic, independent of HTTP: every request is a call that
// returns a Reply (an Outcome and a JSON body; http_server.cc maps them to
// status codes and headers). State lives in memory and in
// SQLite; a mutation is acknowledged only after its transaction commits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "nlohmann/json.hpp"
#include "perseus/job/job.h"
#include "perseus/planner/frontier_io.h"
#include "src/server/job_config.h"
#include "src/server/job_state.h"
#include "src/server/job_store.h"
#include "src/server/straggler_policy.h"

namespace perseus::server {

// What a request came to, in the domain's own terms: the HTTP layer
// (http_server.cc) maps each to its status code, and sets plan replies' ETag.
enum class Outcome {
  kOk,
  kCreated,
  kAccepted,     // taken; the work it starts goes on (planning)
  kNotModified,  // the client's plan is current
  kInvalid,      // the request is wrong; body {error, field?}
  kNotFound,
  kConflict,  // not in this state, or against what is already there
  kFailed,    // the server could not do it (storage)
};

struct Reply {
  Outcome outcome = Outcome::kOk;
  nlohmann::json body;
  // Plan replies: the plan's pipeline and version (what the ETag names).
  int plan_pipeline = -1;
  int64_t plan_version = -1;
};

Reply Error(Outcome outcome, const std::string& message, const std::string& field = "");

// The plan a client says it has (from its If-None-Match), or none.
struct KnownPlan {
  int pipeline = -1;
  int64_t version = -1;
};

// A non-negative decimal integer of at most 18 digits (path and query parameters).
bool ParseCount(const std::string& text, int64_t* out);

struct RankInfo {
  int rank = 0, pp_rank = 0, dp_rank = 0, tp_rank = 0;
  std::string gpu_name;
  std::vector<int> frequencies_mhz;
  nlohmann::json ToJson() const;
  bool operator==(const RankInfo&) const = default;
};

struct Straggler {
  double slowdown = 0;          // given, or 0
  double iteration_time_s = 0;  // given, or 0
  bool detected = false;        // declared by the detection policy (else a manual request)
  double reference_s = 0;       // detected: the others' median it was judged against
};

// The blocking power a job's plan uses: the job's own, or the median of the
// ones its ranks measured with their profiles.
struct BlockingPowerUsed {
  double watts = 0;
  std::string source;  // "config" | "measured"
};

// A pipeline's current plan: the frontier point it comes from, and (for a
// pipeline waiting for a straggler) that point improved for the target time.
struct PipelineState {
  int64_t version = 0;
  size_t point = 0;
  double target_time_s = 0;
  double energy_j = 0;  // the plan's realized energy per iteration (until its own end)
  std::shared_ptr<const std::vector<int>> frequencies;  // per computation id
};

struct Job {
  int64_t id = 0;
  JobConfig config;
  JobState state = JobState::kRegistering;
  std::string reason;
  // Planning: times a planning of the current profile began (stored: a job
  // whose planning a crash interrupted too often is not planned again), and
  // the running planning's stop flag (set by DELETE).
  int64_t planning_attempts = 0;
  std::shared_ptr<std::atomic<bool>> cancel;
  // The planning problem PutProfile built to check the profile, which the
  // planning then takes (after a restart, the planning builds it again).
  std::shared_ptr<const job::PreparedJob> prepared;
  // What looks wrong in the profile but is planned anyway (PreparedJob's
  // warnings, from when the profile became complete; stored).
  std::vector<std::string> warnings;
  double progress = 0;
  std::map<int, RankInfo> ranks;
  std::string profile_csv;
  std::map<std::pair<int, int>, std::string> measured;        // (stage, tp_rank) -> CSV rows
  std::map<std::pair<int, int>, double> measured_blocking_w;  // (stage, tp_rank) -> watts
  // In-job profiling: each rank's progress (0..1) from its profiling iteration reports.
  std::map<int, double> profiling_progress;
  int64_t profiling_reports = 0;  // profiling iteration reports since the server started
  std::shared_ptr<const planner::StoredFrontier> frontier;
  double all_max_time_s = 0, all_max_energy_j = 0, solve_seconds = 0;
  std::vector<PipelineState> pipelines;
  std::map<int, Straggler> stragglers;
  int64_t reports = 0, last_iteration = -1;
  double reported_energy_j = 0, reported_time_s = 0;
  // Plan mismatches the ranks reported (the sum), and the iteration reports with any.
  int64_t mismatches = 0, iterations_with_mismatches = 0;
  // (pipeline, plan version, pipeline rank) -> the instruction list, built on first use.
  std::map<std::tuple<int, int64_t, int>, nlohmann::json> plan_cache;
  // The current frontier's plans by target time (PlanFor), so that a plan
  // computed without the lock (a straggler's, up to ~0.6 s) is used under it.
  std::map<double, PipelineState> plan_memo;
  // Straggler detection (in memory only): iteration -> rank -> reported time_s,
  // for iterations not yet complete; the last iteration fed to the policy.
  std::map<int64_t, std::map<int, double>> pending_times;
  int64_t last_observed_iteration = -1;
  std::optional<StragglerWatch> watch;  // the policy's memory; built on first use
  // Decisions taken, not yet applied, oldest first: applied in this order,
  // each after its plan was computed without the lock.
  struct Detection {
    StragglerDecision decision;
    int64_t iteration = 0;
  };
  std::deque<Detection> detections;
  int64_t stragglers_detected = 0, stragglers_recovered = 0;  // since the server started
};

std::optional<BlockingPowerUsed> BlockingPower(const Job& job);
// The same from a config and measured watts (an upload not yet applied).
std::optional<BlockingPowerUsed> BlockingPower(
    const JobConfig& config, const std::map<std::pair<int, int>, double>& measured_w);

// The jobs table's mutable columns: a change is written as a whole row, and
// applied to the Job in memory only once its transaction has committed.
struct JobRow {
  JobState state = JobState::kRegistering;
  std::string reason, profile_csv;
  double all_max_time_s = 0, all_max_energy_j = 0, solve_seconds = 0;
  int64_t planning_attempts = 0;
  std::vector<std::string> warnings;
  static JobRow Of(const Job& job);
  // The row as the store kept it (its warnings' text parsed; a state that does
  // not parse is `failed`, which Load reports).
  static JobRow FromValues(const JobRowValues& values);
  void ApplyTo(Job* job) const;
  JobRowValues Values() const;  // as the store keeps it
};

// Figures /metrics shows.
struct CoordinatorStats {
  std::map<std::string, int> jobs_by_state;
  int ranks = 0;
  int64_t plan_versions = 0;  // sum over pipelines
  double solve_seconds = 0;   // sum over ready jobs
  double reported_energy_j = 0;
  struct Mismatches {
    int64_t total = 0;       // plan mismatches reported
    int64_t iterations = 0;  // iteration reports with at least one
  };
  std::map<int64_t, Mismatches> mismatches_by_job;  // every job, by id
  struct Detections {
    int64_t detected = 0, recovered = 0;
  };
  std::map<int64_t, Detections> detections_by_job;  // every job, by id
  struct Profiling {
    double progress = 0;     // the slowest rank's (0..1)
    int64_t iterations = 0;  // profiling iteration reports since the server started
  };
  std::map<int64_t, Profiling> profiling_by_job;  // jobs that profile in the job
};

// How the coordinator bounds the work jobs make.
struct CoordinatorOptions {
  // Jobs planned at once, each on its own thread; queued jobs go smallest
  // first, so one large job never holds back the small ones behind it.
  int planning_threads = 2;
  // A job of more computations per pipeline (stages x microbatches x virtual
  // stages) is large: large jobs run on at most planning_threads - 1 workers,
  // so the others always have one (4096: 32 x 128 plans in seconds).
  int64_t large_job_size = 4096;
  // Tests: runs on the worker as a job's planning begins (without the lock).
  std::function<void(int64_t job)> on_planning;
  // A planning that runs longer fails its job (never the server or others).
  double planning_time_limit_s = 900;
  // A job whose planning was interrupted (a crash, a kill) this many times is
  // failed at the next start instead of planned again: no crash loop.
  int max_planning_attempts = 2;
  job::WorkLimits limits;  // checked when the job and its profile arrive
  // Tests: runs while a straggler's plan is computed with the lock released.
  std::function<void()> while_unlocked;
};

class Coordinator {
 public:
  using Log = std::function<void(const std::string&)>;
  // The server's: a SqliteJobStore at db_path.
  static Result<std::unique_ptr<Coordinator>> Open(const std::string& db_path, Log log,
                                                   const CoordinatorOptions& options = {});
  // Over any store (MemoryJobStore in unit tests); restores every job it holds.
  static Result<std::unique_ptr<Coordinator>> Open(std::unique_ptr<JobStore> store, Log log,
                                                   const CoordinatorOptions& options = {});
  ~Coordinator();

  Reply CreateJob(const std::string& body);
  Reply GetJob(int64_t job);
  // state: "" for all, or one state's name.
  Reply ListJobs(const std::string& state);
  // Cancels the job's planning and removes it and all its data.
  Reply DeleteJob(int64_t job);
  Reply RegisterRank(int64_t job, const std::string& body);
  Reply PutProfile(int64_t job, const std::string& content_type, const std::string& body);
  Reply GetFrontier(int64_t job);
  // since: the client's version ("" : none); known: the plan its ETag names.
  Reply GetPlan(int64_t job, const std::string& rank, const std::string& since,
                const KnownPlan& known = {});
  Reply AddStraggler(int64_t job, const std::string& body);
  Reply RemoveStraggler(int64_t job, const std::string& pipeline);
  Reply ReportIteration(int64_t job, const std::string& body);
  Reply GetReport(int64_t job);
  CoordinatorStats Stats();

  // Blocks until the planning queue is empty (tests).
  void WaitIdle();

 private:
  Coordinator() = default;
  Status Load();
  Job* Find(int64_t id);  // REQUIRES: mu_ held
  void PlanLoop();
  void Enqueue(int64_t job);  // REQUIRES: mu_ held
  // The queued job a free worker takes next, if one may start. REQUIRES: mu_ held.
  std::optional<std::deque<int64_t>::iterator> Runnable();
  int64_t PlanningSize(int64_t id);                  // REQUIRES: mu_ held
  void Plan(int64_t id);                             // one job's planning, outside mu_
  void FailLoad(Job* job, const std::string& what);  // a row did not parse
  // Straggler set -> every pipeline's point and target; bumps versions that changed.
  Status Retarget(Job& job);  // REQUIRES: mu_ held; writes pipelines in the open transaction
  // The plan for a target time (T_min or a straggler's T'). REQUIRES: mu_ held, a frontier.
  static PipelineState PlanFor(Job& job, double target_time_s);
  // The same from the frontier alone, without the memo: callable without mu_.
  static PipelineState ComputePlan(const planner::StoredFrontier& frontier, double target_time_s);
  // Before a straggler change: computes the plan for `target_time_s` without
  // the lock if the memo lacks it. REQUIRES: lock held (it is released and
  // taken again); returns the job, or nullptr if it went meanwhile.
  Job* PrecomputePlan(std::unique_lock<std::mutex>& lock, int64_t id, double target_time_s);
  // Whether PrecomputePlan would compute anything: the job has a frontier, the
  // memo lacks the plan, and the target is slower than T_min (whose plan is
  // the fastest point's, no search).
  static bool PlanToPrecompute(const Job& job, double target_time_s);
  // Recomputes every pipeline's plan from its stored point and target (after a restart).
  static void RefreshPlans(Job& job);
  // The discrete local search's budget for a straggler's plan (computations visited).
  static constexpr int64_t kImproveWork = 30'000'000;
  // Sets (or, with nullopt, clears) a pipeline's straggler entry, retargets
  // every pipeline, and commits both; the in-memory state is undone on failure.
  Reply ChangeStraggler(Job* job, int pipeline, std::optional<Straggler> straggler);  // mu_ held
  // Straggler detection: records one report's time; feeds the policy each
  // iteration every rank reported and queues its decisions (job->detections).
  void DetectStragglers(Job* job, int rank, int64_t iteration, double time_s);  // mu_ held
  // Applies the job's queued decisions in order, each plan computed without
  // the lock (as a manual request's). REQUIRES: lock held; released meanwhile.
  void ApplyDetections(std::unique_lock<std::mutex>& lock, int64_t id);
  StragglerWatch& WatchFor(Job* job);  // mu_ held
  // A manual request took `pipeline` over: detection forgets it and drops
  // its queued decisions. REQUIRES: mu_ held.
  static void Forget(Job* job, int pipeline);
  Result<nlohmann::json> MeasuredSavings(const Job& job);  // mu_ held
  Status SaveJobRow(const Job& job) { return SaveJobRow(job.id, JobRow::Of(job)); }
  Status SaveJobRow(int64_t id, const JobRow& row);
  nlohmann::json JobJson(const Job* job) const;  // REQUIRES: mu_ held
  Status PlanningDone(int64_t id, Result<planner::FrontierFiles> files, double all_max_time,
                      double all_max_energy, double seconds);

  Log log_;
  std::unique_ptr<JobStore> store_;
  std::mutex mu_;
  std::map<int64_t, Job> jobs_;

  CoordinatorOptions options_;
  std::deque<int64_t> queue_;
  int planning_running_ = 0;
  int large_running_ = 0;  // of which large (CoordinatorOptions::large_job_size)
  bool stop_ = false;
  std::condition_variable queue_cv_, idle_cv_;
  std::vector<std::thread> planners_;
};

}  // namespace perseus::server
