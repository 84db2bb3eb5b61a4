#include "src/server/coordinator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "perseus/common/json_text.h"
#include "perseus/planner/solver.h"
#include "src/server/sqlite_job_store.h"

namespace perseus::server {
namespace {

using nlohmann::json;

// The most plan mismatches one iteration report may carry, as client::Client::kMaxMismatches
// (keeps the job's sums far from overflow).
constexpr int64_t kMaxMismatches = 1000000000;

Reply Ok(Outcome outcome, json body) { return Reply{outcome, std::move(body)}; }

Reply FromStatus(const Status& s) { return Error(Outcome::kFailed, s.message()); }

// Parses a JSON body: an object, or an error reply.
std::optional<Reply> ParseObject(const std::string& body, json* out) {
  *out = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return Error(Outcome::kInvalid, "the request body is not valid JSON");
  if (!out->is_object()) return Error(Outcome::kInvalid, "the request body must be a JSON object");
  return std::nullopt;
}

// An integer field in [lo, hi]; an error reply otherwise.
std::optional<Reply> IntField(const json& j, const char* name, int64_t lo, int64_t hi, int64_t* out,
                              bool required = true) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (!required) return std::nullopt;
    return Error(Outcome::kInvalid, std::string("field '") + name + "' is required", name);
  }
  if (!it->is_number_integer()) {
    return Error(Outcome::kInvalid, std::string("field '") + name + "' must be an integer", name);
  }
  const int64_t v =
      it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX ? INT64_MAX : it->get<int64_t>();
  if (v < lo || v > hi) {
    return Error(Outcome::kInvalid,
                 std::string("field '") + name + "' must be between " + std::to_string(lo) +
                     " and " + std::to_string(hi) + ", got " + std::to_string(v),
                 name);
  }
  *out = v;
  return std::nullopt;
}

std::optional<Reply> NumberField(const json& j, const char* name, double lo, double hi, double* out,
                                 bool required = true) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (!required) return std::nullopt;
    return Error(Outcome::kInvalid, std::string("field '") + name + "' is required", name);
  }
  if (!it->is_number())
    return Error(Outcome::kInvalid, std::string("field '") + name + "' must be a number", name);
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    return Error(Outcome::kInvalid,
                 std::string("field '") + name + "' must be between " + std::to_string(lo) +
                     " and " + std::to_string(hi),
                 name);
  }
  *out = v;
  return std::nullopt;
}

// Every member of a request object must be one of `names`: a typo
// (stages_typo) is a 400 naming it, never silently ignored.
std::optional<Reply> OnlyFields(const json& j, std::initializer_list<std::string_view> names,
                                const std::string& where = "") {
  std::string known;
  auto unknown = UnknownField(j, names, &known);
  if (!unknown) return std::nullopt;
  return Error(Outcome::kInvalid,
               "unknown field '" + *unknown + "'" + where + " (known: " + known + ")", *unknown);
}

std::string StateName(JobState s) { return std::string(JobStateName(s)); }

bool IsPhase(const std::string& phase) {
  return phase == "warmup" || phase == "baseline" || phase == "profiling" || phase == "planned";
}

// The most a straggler's iteration may take, in T_min.
constexpr double kMaxSlowdown = 10;

// Seconds as people read them: 4 significant digits (3.27, 0.0501).
std::string FormatSeconds(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g", s);
  return buffer;
}

double TMin(const planner::StoredFrontier& f) { return f.points()[f.TMinIndex()].time_s; }

// The iteration time a straggler imposes: given, or its slowdown times T_min.
double TPrime(const Straggler& s, double t_min_s) {
  return s.iteration_time_s > 0 ? s.iteration_time_s : s.slowdown * t_min_s;
}

}  // namespace

bool ParseCount(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

namespace {}  // namespace

Reply Error(Outcome outcome, const std::string& message, const std::string& field) {
  json body = {{"error", message}};
  if (!field.empty()) body["field"] = field;
  return Reply{outcome, std::move(body)};
}

json RankInfo::ToJson() const {
  return {{"rank", rank},       {"pp_rank", pp_rank},   {"dp_rank", dp_rank},
          {"tp_rank", tp_rank}, {"gpu_name", gpu_name}, {"frequencies_mhz", frequencies_mhz}};
}

Result<std::unique_ptr<Coordinator>> Coordinator::Open(const std::string& db_path, Log log,
                                                       const CoordinatorOptions& options) {
  auto store = SqliteJobStore::Open(db_path, log);
  if (!store.ok()) return store.status();
  return Open(std::move(store).value(), std::move(log), options);
}

Result<std::unique_ptr<Coordinator>> Coordinator::Open(std::unique_ptr<JobStore> store, Log log,
                                                       const CoordinatorOptions& options) {
  if (options.planning_threads < 1 || options.planning_threads > 256) {
    return Status::InvalidInput("planning_threads must be between 1 and 256");
  }
  if (!(options.planning_time_limit_s > 0)) {
    return Status::InvalidInput("planning_time_limit must be a positive number of seconds");
  }
  auto c = std::unique_ptr<Coordinator>(new Coordinator);
  c->log_ = std::move(log);
  c->options_ = options;
  c->store_ = std::move(store);
  if (Status s = c->Load(); !s.ok()) return s;
  for (int t = 0; t < options.planning_threads; ++t) {
    c->planners_.emplace_back([p = c.get()] { p->PlanLoop(); });
  }
  return c;
}

Coordinator::~Coordinator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    for (auto& [id, job] : jobs_) {
      if (job.cancel) job.cancel->store(true);
    }
  }
  queue_cv_.notify_all();
  for (std::thread& t : planners_) t.join();
}

// Loading is defensive: a row that does not parse, or holds values out of
// range for its job (a damaged or hand-edited database), fails that job's
// loading with a logged reason; the job is shown `failed`, the rows stay as
// they were for inspection, and the server and every other job go on.
void Coordinator::FailLoad(Job* job, const std::string& what) {
  if (job->state == JobState::kFailed && job->reason.rfind("not loaded: ", 0) == 0) return;
  job->state = JobState::kFailed;
  job->reason = "not loaded: " + what;
  job->frontier = nullptr;
  job->pipelines.clear();
  if (log_) log_("job " + std::to_string(job->id) + ": " + job->reason);
}

Status Coordinator::Load() {
  auto in_range = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
  auto stored_jobs = store_->LoadAll();
  if (!stored_jobs.ok()) return stored_jobs.status();
  for (StoredJob& stored : *stored_jobs) {
    Job& job = jobs_[stored.id];
    job.id = stored.id;
    const auto state = ParseJobState(stored.row.state);
    JobRow{state.value_or(JobState::kFailed), stored.row.reason,           stored.row.profile_csv,
           stored.row.all_max_time_s,         stored.row.all_max_energy_j, stored.row.solve_seconds,
           stored.row.planning_attempts}
        .ApplyTo(&job);
    std::string field;
    auto config = ParseJobConfig(json::parse(stored.config_json, nullptr, false), &field);
    if (!config.ok()) {
      FailLoad(&job, "its stored config does not parse: " + config.status().message());
      continue;
    }
    job.config = *config;
    if (!state) {
      FailLoad(&job, "its stored state '" + stored.row.state.substr(0, 64) + "' is not a state");
      continue;
    }
    const JobConfig& c = job.config;
    for (const std::string& info : stored.rank_infos) {
      const json j = json::parse(info, nullptr, false);
      RankInfo r;
      try {
        if (!j.is_object()) throw std::invalid_argument("not a JSON object");
        r.rank = j.at("rank").get<int>();
        r.pp_rank = j.at("pp_rank").get<int>();
        r.dp_rank = j.at("dp_rank").get<int>();
        r.tp_rank = j.value("tp_rank", 0);
        r.gpu_name = j.value("gpu_name", std::string());
        r.frequencies_mhz = j.at("frequencies_mhz").get<std::vector<int>>();
      } catch (const std::exception& e) {
        FailLoad(&job, "a ranks row does not parse (" + std::string(e.what()) + ")");
        break;
      }
      if (!in_range(r.rank, 0, c.ranks() - 1) || !in_range(r.pp_rank, 0, c.spec.stages - 1) ||
          !in_range(r.dp_rank, 0, c.spec.dp - 1) || !in_range(r.tp_rank, 0, c.spec.tp - 1)) {
        FailLoad(&job, "rank " + std::to_string(r.rank) + "'s row is out of the job's ranges");
        break;
      }
      job.ranks[r.rank] = r;
    }
    for (const StoredMeasurement& m : stored.measurements) {
      if (!in_range(m.stage, 0, c.spec.stages - 1) || !in_range(m.tp_rank, 0, c.spec.tp - 1)) {
        FailLoad(&job, "a measurements row is out of the job's stages");
        break;
      }
      const std::pair<int, int> key{static_cast<int>(m.stage), static_cast<int>(m.tp_rank)};
      job.measured[key] = m.rows;
      if (m.blocking_power >= 0) job.measured_blocking_w[key] = m.blocking_power;
    }
    if (job.state == JobState::kFailed && job.reason.rfind("not loaded: ", 0) == 0) continue;
    if (stored.frontier) {
      auto parsed =
          planner::StoredFrontier::Parse(*stored.frontier, "job " + std::to_string(job.id));
      if (!parsed.ok()) {
        FailLoad(&job, "its stored frontier does not parse: " + parsed.status().message());
        continue;
      }
      job.frontier = std::make_shared<planner::StoredFrontier>(std::move(parsed).value());
    }
    for (const StoredPipeline& p : stored.pipelines) {
      if (!in_range(p.pipeline, 0, c.spec.dp - 1) || p.version < 1 ||
          !std::isfinite(p.target_time_s) || p.target_time_s < 0 || job.frontier == nullptr ||
          !in_range(p.point, 0, static_cast<int64_t>(job.frontier->points().size()) - 1)) {
        FailLoad(&job,
                 "a pipelines row is out of range (pipeline " + std::to_string(p.pipeline) + ")");
        break;
      }
      if (job.pipelines.size() <= static_cast<size_t>(p.pipeline)) {
        job.pipelines.resize(static_cast<size_t>(p.pipeline) + 1);
      }
      PipelineState& state_p = job.pipelines[static_cast<size_t>(p.pipeline)];
      state_p.version = p.version;
      state_p.point = static_cast<size_t>(p.point);
      state_p.target_time_s = p.target_time_s;
    }
    if (job.state == JobState::kFailed && job.reason.rfind("not loaded: ", 0) == 0) continue;
    for (const StoredStraggler& st : stored.stragglers) {
      if (!in_range(st.pipeline, 0, c.spec.dp - 1) || !std::isfinite(st.slowdown) ||
          !std::isfinite(st.iteration_time_s) || st.slowdown < 0 || st.iteration_time_s < 0) {
        FailLoad(&job, "a stragglers row is out of range");
        break;
      }
      job.stragglers[static_cast<int>(st.pipeline)] =
          Straggler{st.slowdown, st.iteration_time_s, st.source == "detected", st.reference_time_s};
    }
    if (job.state == JobState::kFailed && job.reason.rfind("not loaded: ", 0) == 0) continue;
    const bool ready = job.state == JobState::kReady;
    if (ready && job.frontier == nullptr) {
      FailLoad(&job, "it is ready but has no stored frontier");
    } else if (ready && static_cast<int>(job.pipelines.size()) != c.spec.dp) {
      FailLoad(&job, "it is ready but has " + std::to_string(job.pipelines.size()) +
                         " pipelines rows for dp " + std::to_string(c.spec.dp));
    } else if (ready) {
      for (const PipelineState& p : job.pipelines) {
        if (p.version < 1) {
          FailLoad(&job, "a pipeline of it has no stored plan");
          break;
        }
      }
    }
    if (job.state != JobState::kFailed && job.frontier != nullptr) {
      RefreshPlans(job);  // the plans the stored targets give
    }
    job.reports = stored.iterations.reports;
    job.reported_energy_j = stored.iterations.energy_j;
    job.reported_time_s = stored.iterations.time_s;
    job.last_iteration = stored.iterations.last_iteration;
    job.mismatches = stored.iterations.mismatches;
    job.iterations_with_mismatches = stored.iterations.reports_with_mismatches;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : jobs_) {
    if (job.state != JobState::kPlanning) continue;
    if (job.planning_attempts >= options_.max_planning_attempts) {
      // Planning it was interrupted that often: most likely it takes the server
      // down (memory); planning it again would do so at every start.
      JobRow row = JobRow::Of(job);
      row.state = JobState::kFailed;
      row.reason = "planning was interrupted " + std::to_string(job.planning_attempts) +
                   " times (the server stopped or was killed while planning this job, which "
                   "may exceed the server's memory); not planned again: upload the profile "
                   "again after checking the job's size";
      if (Status saved = SaveJobRow(id, row); !saved.ok()) return saved;
      row.ApplyTo(&job);
      if (log_) log_("job " + std::to_string(id) + " failed: " + job.reason);
      continue;
    }
    if (log_)
      log_("job " + std::to_string(id) + ": frontier computation was interrupted; redoing it");
    Enqueue(id);
  }
  return Status::Ok();
}

Job* Coordinator::Find(int64_t id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

JobRow JobRow::Of(const Job& job) {
  return JobRow{job.state,
                job.reason,
                job.profile_csv,
                job.all_max_time_s,
                job.all_max_energy_j,
                job.solve_seconds,
                job.planning_attempts};
}

void JobRow::ApplyTo(Job* job) const {
  job->state = state;
  job->reason = reason;
  job->profile_csv = profile_csv;
  job->all_max_time_s = all_max_time_s;
  job->all_max_energy_j = all_max_energy_j;
  job->solve_seconds = solve_seconds;
  job->planning_attempts = planning_attempts;
}

JobRowValues JobRow::Values() const {
  return JobRowValues{StateName(state), reason,        profile_csv,      all_max_time_s,
                      all_max_energy_j, solve_seconds, planning_attempts};
}

Status Coordinator::SaveJobRow(int64_t id, const JobRow& row) {
  return store_->SaveJobRow(id, row.Values());
}

Reply Coordinator::CreateJob(const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::string field;
  auto config = ParseJobConfig(j, &field);
  if (!config.ok()) return Error(Outcome::kInvalid, config.status().message(), field);
  if (Status s = job::CheckWorkLimits(config->spec, options_.limits); !s.ok()) {
    // The message begins with the field at fault.
    const bool virtual_stages = s.message().rfind("virtual_stages", 0) == 0;
    return Error(Outcome::kInvalid, s.message(),
                 virtual_stages                      ? "virtual_stages"
                 : config->spec.schedule_csv.empty() ? "microbatches"
                                                     : "schedule_csv");
  }
  std::lock_guard<std::mutex> lock(mu_);
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  auto inserted = store_->InsertJob(JsonText(config->ToJson()), JobRow{}.Values());
  if (!inserted.ok()) return FromStatus(inserted.status());
  const int64_t id = *inserted;
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  Job job;
  job.id = id;
  job.config = *config;
  job.state = JobState::kRegistering;
  jobs_[id] = std::move(job);
  if (log_) log_("job " + std::to_string(id) + " created: " + config->name);
  return Ok(Outcome::kCreated, {{"job_id", id}});
}

Reply Coordinator::GetJob(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  return Ok(Outcome::kOk, JobJson(job));
}

Reply Coordinator::ListJobs(const std::string& state_name) {
  std::optional<JobState> only;
  if (!state_name.empty()) {
    only = ParseJobState(state_name);
    if (!only) {
      return Error(Outcome::kInvalid,
                   "query parameter 'state' must be registering, profiling, planning, ready or "
                   "failed",
                   "state");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  json jobs = json::array();
  for (const auto& [id, job] : jobs_) {
    if (only && job.state != *only) continue;
    json row = {{"job_id", id},
                {"name", job.config.name},
                {"state", StateName(job.state)},
                {"progress", job.progress},
                {"ranks_registered", job.ranks.size()},
                {"ranks_expected", job.config.ranks()}};
    if (!job.reason.empty()) row["reason"] = job.reason;
    jobs.push_back(std::move(row));
  }
  return Ok(Outcome::kOk, {{"jobs", std::move(jobs)}});
}

Reply Coordinator::DeleteJob(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  if (Status s = store_->DeleteJob(id); !s.ok()) return FromStatus(s);
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  // Committed: now memory. A running planning stops at its next step and
  // finds no job to store into.
  if (job->cancel) job->cancel->store(true);
  queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
  jobs_.erase(id);
  idle_cv_.notify_all();
  if (log_) log_("job " + std::to_string(id) + " deleted");
  return Ok(Outcome::kOk, {{"job_id", id}, {"deleted", true}});
}

json Coordinator::JobJson(const Job* job) const {
  json body = {{"job_id", job->id},
               {"config", job->config.ToJson()},
               {"state", StateName(job->state)},
               {"progress", job->progress},
               {"ranks_registered", job->ranks.size()},
               {"ranks_expected", job->config.ranks()}};
  if (!job->reason.empty()) body["reason"] = job->reason;
  if (auto blocking = BlockingPower(*job)) {
    body["blocking_power"] = {{"w", blocking->watts}, {"source", blocking->source}};
  }
  if (!job->profiling_progress.empty() || job->state == JobState::kProfiling) {
    // In-job profiling: the stages (x tensor-parallel ranks) uploaded, and every
    // rank's progress as its profiling iteration reports said.
    json ranks = json::object();
    for (const auto& [r, p] : job->profiling_progress) ranks[std::to_string(r)] = p;
    body["profiling"] = {{"stages_measured", job->measured.size()},
                         {"stages_expected", job->config.spec.stages * job->config.spec.tp},
                         {"progress_by_rank", ranks}};
  }
  if (job->frontier != nullptr) {
    const auto& points = job->frontier->points();
    const auto& fastest = points[job->frontier->TMinIndex()];
    // Energies here are one pipeline's (the frontier's scope); the job's are
    // dp times that, given beside them.
    const double dp = job->config.spec.dp;
    body["frontier"] = {{"energy_scope", "pipeline"},
                        {"points", points.size()},
                        {"t_min_s", fastest.time_s},
                        {"t_min_energy_j", fastest.energy_j},
                        {"t_min_job_energy_j", fastest.energy_j * dp},
                        {"all_max_time_s", job->all_max_time_s},
                        {"all_max_energy_j", job->all_max_energy_j},
                        {"all_max_job_energy_j", job->all_max_energy_j * dp},
                        {"solve_seconds", job->solve_seconds}};
    json pipelines = json::array();
    for (size_t p = 0; p < job->pipelines.size(); ++p) {
      pipelines.push_back({{"pipeline", p},
                           {"version", job->pipelines[p].version},
                           {"target_time_s", job->pipelines[p].target_time_s},
                           {"frontier_point", job->pipelines[p].point},
                           {"energy_j", job->pipelines[p].energy_j},
                           {"straggler", job->stragglers.count(static_cast<int>(p)) > 0}});
    }
    body["pipelines"] = pipelines;
  }
  json stragglers = json::array();
  for (const auto& [p, s] : job->stragglers) {
    // Stragglers exist only on planned jobs (AddStraggler requires `ready`).
    stragglers.push_back(
        {{"pipeline", p},
         {"slowdown", s.slowdown},
         {"iteration_time", s.iteration_time_s},
         {"source", s.detected ? "detected" : "manual"},
         {"t_prime_s", job->frontier != nullptr ? TPrime(s, TMin(*job->frontier)) : 0.0}});
  }
  body["stragglers"] = stragglers;
  return body;
}

Reply Coordinator::RegisterRank(int64_t id, const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  const JobConfig& c = job->config;
  if (auto e =
          OnlyFields(j, {"rank", "pp_rank", "dp_rank", "tp_rank", "gpu_name", "frequencies_mhz"})) {
    return *e;
  }
  int64_t rank = 0, pp = 0, dp = 0, tp = 0;
  if (auto e = IntField(j, "rank", 0, c.ranks() - 1, &rank)) return *e;
  if (auto e = IntField(j, "pp_rank", 0, c.spec.stages - 1, &pp)) return *e;
  if (auto e = IntField(j, "dp_rank", 0, c.spec.dp - 1, &dp)) return *e;
  if (auto e = IntField(j, "tp_rank", 0, c.spec.tp - 1, &tp, false)) return *e;
  RankInfo info;
  info.rank = static_cast<int>(rank);
  info.pp_rank = static_cast<int>(pp);
  info.dp_rank = static_cast<int>(dp);
  info.tp_rank = static_cast<int>(tp);
  auto name = j.find("gpu_name");
  if (name != j.end() && !name->is_string())
    return Error(Outcome::kInvalid, "field 'gpu_name' must be a string", "gpu_name");
  if (name != j.end()) info.gpu_name = name->get<std::string>();
  auto freqs = j.find("frequencies_mhz");
  if (freqs == j.end() || !freqs->is_array() || freqs->empty() || freqs->size() > 4096) {
    return Error(Outcome::kInvalid,
                 "field 'frequencies_mhz' must be a non-empty array of MHz values",
                 "frequencies_mhz");
  }
  for (const json& f : *freqs) {
    if (!f.is_number_integer() || f.get<int64_t>() <= 0 || f.get<int64_t>() > 100000) {
      return Error(Outcome::kInvalid, "field 'frequencies_mhz' must hold positive integers",
                   "frequencies_mhz");
    }
    info.frequencies_mhz.push_back(f.get<int>());
  }
  std::sort(info.frequencies_mhz.rbegin(), info.frequencies_mhz.rend());
  info.frequencies_mhz.erase(std::unique(info.frequencies_mhz.begin(), info.frequencies_mhz.end()),
                             info.frequencies_mhz.end());
  auto existing = job->ranks.find(info.rank);
  if (existing != job->ranks.end()) {
    if (existing->second == info)
      return Ok(Outcome::kOk, {{"rank", info.rank}, {"registered", true}});
    return Error(Outcome::kConflict,
                 "rank " + std::to_string(info.rank) + " is already registered with different data",
                 "rank");
  }
  // One rank per (pp, dp, tp) position.
  for (const auto& [r, other] : job->ranks) {
    if (other.pp_rank == info.pp_rank && other.dp_rank == info.dp_rank &&
        other.tp_rank == info.tp_rank) {
      return Error(Outcome::kConflict,
                   "rank " + std::to_string(r) + " already holds position pp_rank " +
                       std::to_string(info.pp_rank) + ", dp_rank " + std::to_string(info.dp_rank) +
                       ", tp_rank " + std::to_string(info.tp_rank),
                   "pp_rank");
    }
  }
  // A rank that arrives after the profile: the plan's clocks must be its GPU's.
  if (!job->profile_csv.empty()) {
    auto profile = planner::ParseProfileCsv(job->profile_csv, "profile");
    if (profile.ok()) {
      for (const auto& [key, rows] : profile->measurements) {
        for (const auto& m : rows) {
          const auto& allowed = info.frequencies_mhz;
          if (std::find(allowed.begin(), allowed.end(), m.frequency_mhz) == allowed.end()) {
            return Error(Outcome::kInvalid,
                         "the job's profile uses " + std::to_string(m.frequency_mhz) +
                             " MHz, which is not among rank " + std::to_string(info.rank) +
                             "'s frequencies_mhz",
                         "frequencies_mhz");
          }
        }
      }
    }
  }
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  if (Status s = store_->InsertRank(id, info.rank, JsonText(info.ToJson())); !s.ok()) {
    return FromStatus(s);
  }
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  job->ranks[info.rank] = info;
  return Ok(Outcome::kOk, {{"rank", info.rank}, {"registered", true}});
}

Reply Coordinator::PutProfile(int64_t id, const std::string& content_type,
                              const std::string& body) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  if (job->state == JobState::kPlanning || job->state == JobState::kReady) {
    return Error(Outcome::kConflict, "job " + std::to_string(id) +
                                         " already has its profile (state " +
                                         StateName(job->state) + ")");
  }
  // Everything is decided first; the database and then memory change only
  // once it is accepted (a rejected upload changes nothing).
  JobRow row = JobRow::Of(*job);
  const bool csv = content_type.rfind("text/csv", 0) == 0;
  const bool was_profiling = job->state == JobState::kProfiling;
  bool complete = csv;
  std::optional<std::pair<std::pair<int, int>, std::string>> upload;  // (stage, tp) -> rows
  double blocking_w = -1;
  auto measured = job->measured;
  auto measured_blocking = job->measured_blocking_w;
  if (csv) {
    auto profile = planner::ParseProfileCsv(body, "profile");
    if (!profile.ok()) return Error(Outcome::kInvalid, profile.status().message(), "profile");
    // Every frequency the plan may use must be one the ranks' GPUs support
    // (each distinct frequency checked once, at its first row).
    std::set<int> checked;
    for (const auto& [key, rows] : profile->measurements) {
      for (const auto& m : rows) {
        if (!checked.insert(m.frequency_mhz).second) continue;
        for (const auto& [r, info] : job->ranks) {
          const auto& allowed = info.frequencies_mhz;
          if (std::find(allowed.begin(), allowed.end(), m.frequency_mhz) == allowed.end()) {
            return Error(Outcome::kInvalid,
                         "profile:" + std::to_string(m.line) + ": " +
                             std::to_string(m.frequency_mhz) + " MHz is not among rank " +
                             std::to_string(r) + "'s supported frequencies",
                         "frequency");
          }
        }
      }
    }
    if (!job->config.blocking_power_given) {
      return Error(Outcome::kInvalid,
                   "job " + std::to_string(id) +
                       " has no blocking_power_w and a CSV profile carries none: give "
                       "blocking_power_w when creating the job, or upload each rank's "
                       "measurements (JSON) with its measured blocking_power_w",
                   "blocking_power_w");
    }
    row.profile_csv = body;
  } else {
    // JSON: one rank's measurements of its stage, validated alone (a rank's
    // mistake is that rank's 400, naming its own entry); a rank may upload
    // again until the profile is complete, replacing its rows.
    json j;
    if (auto error = ParseObject(body, &j)) return *error;
    if (auto e = OnlyFields(j, {"rank", "blocking_power_w", "measurements"})) return *e;
    int64_t rank = 0;
    if (auto e = IntField(j, "rank", 0, job->config.ranks() - 1, &rank)) return *e;
    auto info = job->ranks.find(static_cast<int>(rank));
    if (info == job->ranks.end()) {
      return Error(Outcome::kInvalid, "rank " + std::to_string(rank) + " is not registered",
                   "rank");
    }
    if (auto e = NumberField(j, "blocking_power_w", 0, 1e5, &blocking_w, false)) return *e;
    auto rows = j.find("measurements");
    if (rows == j.end() || !rows->is_array() || rows->empty() || rows->size() > 100000) {
      return Error(Outcome::kInvalid,
                   "field 'measurements' must be a non-empty array (at most 100000 entries)",
                   "measurements");
    }
    const std::string who = "rank " + std::to_string(rank) + "'s ";
    std::string text, alone;  // alone: the same rows as stage 0, tp_rank 0
    std::map<std::pair<planner::Instruction, int64_t>, size_t> seen;
    for (size_t k = 0; k < rows->size(); ++k) {
      const json& m = (*rows)[k];
      const std::string where = "measurements[" + std::to_string(k) + "]";
      if (!m.is_object())
        return Error(Outcome::kInvalid, who + where + " must be an object", "measurements");
      if (auto e = OnlyFields(m, {"instruction", "frequency_mhz", "time_s", "energy_j"},
                              " in " + who + where)) {
        return *e;
      }
      auto instr = m.find("instruction");
      planner::Instruction parsed;
      if (instr == m.end() || !instr->is_string() ||
          !planner::ParseInstruction(instr->get<std::string>(), &parsed)) {
        return Error(Outcome::kInvalid,
                     who + where +
                         ": 'instruction' must be forward, backward, backward_input or "
                         "backward_weight",
                     "measurements");
      }
      int64_t mhz = 0;
      double time_s = 0, energy_j = 0;
      if (auto e = IntField(m, "frequency_mhz", 1, 100000, &mhz)) return *e;
      const auto& allowed = info->second.frequencies_mhz;
      if (std::find(allowed.begin(), allowed.end(), mhz) == allowed.end()) {
        return Error(Outcome::kInvalid,
                     who + where + ": " + std::to_string(mhz) + " MHz is not among rank " +
                         std::to_string(rank) + "'s supported frequencies",
                     "frequency_mhz");
      }
      if (auto e = NumberField(m, "time_s", 1e-9, 1e6, &time_s)) return *e;
      if (auto e = NumberField(m, "energy_j", 0, 1e12, &energy_j)) return *e;
      auto [previous, fresh] = seen.emplace(std::make_pair(parsed, mhz), k);
      if (!fresh) {
        return Error(Outcome::kInvalid,
                     who + where + " repeats " + std::string(planner::InstructionName(parsed)) +
                         " at " + std::to_string(mhz) + " MHz (measurements[" +
                         std::to_string(previous->second) + "])",
                     "measurements");
      }
      const std::string columns = std::string(planner::InstructionName(parsed)) + "," +
                                  std::to_string(mhz) + "," + json(time_s).dump() + "," +
                                  json(energy_j).dump() + ",";
      text += std::to_string(info->second.pp_rank) + "," + columns +
              std::to_string(info->second.tp_rank) + "\n";
      alone += "0," + columns + "0\n";
    }
    const std::string header = "stage,instruction,frequency,time,energy,tp_rank\n";
    if (auto parsed = planner::ParseProfileCsv(header + alone, "measurements"); !parsed.ok()) {
      // "measurements:L: ..." names line L, which is measurements[L - 2].
      std::string message = parsed.status().message();
      const size_t colon = message.find(':', 13);
      if (message.rfind("measurements:", 0) == 0 && colon != std::string::npos) {
        int64_t line = 0;
        if (ParseCount(message.substr(13, colon - 13), &line) && line >= 2) {
          message = "measurements[" + std::to_string(line - 2) + "]" + message.substr(colon);
        }
      }
      return Error(Outcome::kInvalid, who + message, "measurements");
    }
    const std::pair<int, int> key{info->second.pp_rank, info->second.tp_rank};
    measured[key] = text;
    if (blocking_w >= 0) {
      measured_blocking[key] = blocking_w;
    } else {
      measured_blocking.erase(key);
    }
    upload.emplace(key, text);
    // Complete once every stage (and tensor-parallel rank) has measurements.
    complete = static_cast<int>(measured.size()) == job->config.spec.stages * job->config.spec.tp;
    if (!complete) {
      row.state = JobState::kProfiling;
    } else {
      std::string assembled = header;
      for (const auto& [k, rows_text] : measured) assembled += rows_text;
      auto profile = planner::ParseProfileCsv(assembled, "measurements");
      if (!profile.ok()) {
        return Error(
            Outcome::kInvalid,
            who + "upload completes a profile that does not parse: " + profile.status().message(),
            "measurements");
      }
      row.profile_csv = assembled;
    }
  }
  if (complete) {
    // The whole profile: it must plan within the limits (a 400 now, not a
    // job that fails or exhausts the server later).
    auto profile = planner::ParseProfileCsv(row.profile_csv, "profile");
    job::JobSpec spec = job->config.spec;
    if (!job->config.blocking_power_given) {
      std::vector<double> watts;
      for (const auto& [k, w] : measured_blocking) watts.push_back(w);
      spec.blocking_power_w = watts.empty() ? 0 : Median(watts);
    }
    if (profile.ok()) {
      auto prepared = job::PrepareJob(spec, std::move(profile).value(), options_.limits);
      if (!prepared.ok()) {
        const std::string& m = prepared.status().message();
        return Error(Outcome::kInvalid, "the profile cannot be planned for this job: " + m,
                     m.rfind("unit_time", 0) == 0 ? "unit_time" : "profile");
      }
    }
    row.state = JobState::kPlanning;
    row.reason.clear();
    row.planning_attempts = 0;
  }
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  if (upload) {
    Status s = store_->PutMeasurement(
        id, {upload->first.first, upload->first.second, upload->second, blocking_w});
    if (!s.ok()) return FromStatus(s);
  }
  if (Status s = SaveJobRow(id, row); !s.ok()) return FromStatus(s);
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  // Committed: memory follows.
  row.ApplyTo(job);
  job->measured = std::move(measured);
  job->measured_blocking_w = std::move(measured_blocking);
  if (!complete) {
    if (!was_profiling) job->progress = 0;
    return Ok(Outcome::kAccepted,
              {{"state", StateName(job->state)},
               {"stages_measured", job->measured.size()},
               {"stages_expected", job->config.spec.stages * job->config.spec.tp}});
  }
  job->progress = 0;
  Enqueue(id);
  return Ok(Outcome::kAccepted, {{"state", StateName(job->state)}});
}

std::optional<BlockingPowerUsed> BlockingPower(const Job& job) {
  if (job.config.blocking_power_given)
    return BlockingPowerUsed{job.config.spec.blocking_power_w, "config"};
  if (job.measured_blocking_w.empty()) return std::nullopt;
  std::vector<double> watts;
  for (const auto& [key, w] : job.measured_blocking_w) watts.push_back(w);
  return BlockingPowerUsed{Median(watts), "measured"};
}

void Coordinator::Enqueue(int64_t id) {
  queue_.push_back(id);
  queue_cv_.notify_one();
}

int64_t Coordinator::NextQueued() {
  // Smallest job first (computations per pipeline, as the limits count them;
  // ties in arrival order): a large job never holds back the small ones
  // queued behind it, and at most planning_threads large ones run at once.
  auto size = [&](int64_t id) -> int64_t {
    const Job* job = Find(id);
    if (job == nullptr) return 0;
    const JobConfig& c = job->config;
    return static_cast<int64_t>(c.spec.stages) * c.spec.microbatches * c.spec.virtual_stages;
  };
  auto best = queue_.begin();
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (size(*it) < size(*best)) best = it;
  }
  const int64_t id = *best;
  queue_.erase(best);
  return id;
}

void Coordinator::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && planning_running_ == 0; });
}

void Coordinator::PlanLoop() {
  for (;;) {
    int64_t id = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      id = NextQueued();
      if (Find(id) == nullptr) continue;
      ++planning_running_;
    }
    Plan(id);
    std::lock_guard<std::mutex> lock(mu_);
    --planning_running_;
    idle_cv_.notify_all();
  }
}

void Coordinator::Plan(int64_t id) {
  JobConfig config;
  std::string profile_csv;
  std::optional<BlockingPowerUsed> blocking;
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Job* job = Find(id);
    if (job == nullptr) return;
    // Counted before planning begins: a crash while planning leaves the count
    // (Load fails a job interrupted max_planning_attempts times).
    JobRow row = JobRow::Of(*job);
    ++row.planning_attempts;
    if (Status s = SaveJobRow(id, row); !s.ok()) {
      if (log_) log_("job " + std::to_string(id) + ": cannot count its planning: " + s.message());
    }
    job->planning_attempts = row.planning_attempts;
    job->cancel = cancel;
    config = job->config;
    profile_csv = job->profile_csv;
    blocking = BlockingPower(*job);
    if (blocking) config.spec.blocking_power_w = blocking->watts;
  }
  // Plan without the lock: other requests (and other plannings) go on.
  const auto start = std::chrono::steady_clock::now();
  const double limit_s = options_.planning_time_limit_s;
  auto should_stop = [&] {
    return cancel->load() ||
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
               limit_s;
  };
  Result<planner::FrontierFiles> files = Status::Internal("not planned");
  double all_max_time = 0, all_max_energy = 0;
  try {
    auto profile = planner::ParseProfileCsv(profile_csv, "profile");
    if (!profile.ok()) {
      files = profile.status();
    } else if (!blocking) {
      files = Status::InvalidInput(
          "no blocking power: the job was created without blocking_power_w and no rank's "
          "measurements carried one");
    } else {
      auto prepared = job::PrepareJob(config.spec, std::move(profile).value(), options_.limits);
      if (!prepared.ok()) {
        files = prepared.status();
      } else {
        planner::SolverOptions solver;
        solver.should_stop = should_stop;
        auto frontier = job::SolveJob(
            *prepared,
            [this, id](double f) {
              std::lock_guard<std::mutex> lock(mu_);
              if (Job* job = Find(id)) job->progress = f;
            },
            solver, options_.limits);
        if (!frontier.ok()) {
          files = frontier.status();
        } else {
          files = planner::FrontierToFiles(*frontier);
          all_max_time = frontier->all_max.time_s;
          all_max_energy = frontier->all_max.energy_j;
        }
      }
    }
  } catch (const std::bad_alloc&) {
    files =
        Status::InvalidInput("planning ran out of memory (the job is too large for this server)");
  } catch (const std::exception& e) {
    files = Status::Internal(std::string("planning failed: ") + e.what());
  }
  if (!files.ok() && files.status().code() == StatusCode::kCancelled) {
    if (cancel->load()) {
      // Deleted: nothing to store. The server stops: the job stays `planning`
      // and is planned at the next start, this attempt not counted.
      std::lock_guard<std::mutex> lock(mu_);
      Job* job = Find(id);
      if (stop_ && job != nullptr) {
        JobRow row = JobRow::Of(*job);
        row.planning_attempts = std::max<int64_t>(0, row.planning_attempts - 1);
        if (SaveJobRow(id, row).ok()) job->planning_attempts = row.planning_attempts;
      }
      return;
    }
    files = Status::Cancelled("planning took longer than the server's limit of " +
                              std::to_string(static_cast<int64_t>(limit_s)) +
                              " s (planning_time_limit): " + files.status().message() +
                              "; choose a larger unit_time or a smaller job");
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Status stored = PlanningDone(id, std::move(files), all_max_time, all_max_energy, seconds);
  if (!stored.ok() && log_) {
    // The job stays `planning` in the database and is planned again at the next start.
    log_("job " + std::to_string(id) +
         ": could not store the planning result: " + stored.message());
  }
}

Status Coordinator::PlanningDone(int64_t id, Result<planner::FrontierFiles> files,
                                 double all_max_time, double all_max_energy, double seconds) {
  std::shared_ptr<planner::StoredFrontier> stored;
  Status failure;
  if (files.ok()) {
    auto parsed = planner::StoredFrontier::Parse(*files, "job " + std::to_string(id));
    if (parsed.ok()) {
      stored = std::make_shared<planner::StoredFrontier>(std::move(parsed).value());
    } else {
      failure = parsed.status();
    }
  } else {
    failure = files.status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Status::Ok();  // deleted meanwhile: nothing to store
  job->cancel = nullptr;
  JobRow row = JobRow::Of(*job);
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return tx.begun();
  if (stored == nullptr) {
    row.state = JobState::kFailed;
    row.reason = failure.message();
    if (Status s = SaveJobRow(id, row); !s.ok()) return s;
    if (Status s = tx.Commit(); !s.ok()) return s;
    row.ApplyTo(job);
    if (log_) log_("job " + std::to_string(id) + " failed: " + job->reason);
    return Status::Ok();
  }
  Status s = store_->PutFrontier(id, *files);
  if (!s.ok()) return s;
  row.all_max_time_s = all_max_time;
  row.all_max_energy_j = all_max_energy;
  row.solve_seconds = seconds;
  row.state = JobState::kReady;
  if (s = SaveJobRow(id, row); !s.ok()) return s;
  // Retarget computes the pipelines' plans in memory and writes them in this
  // transaction; undone if it does not commit.
  const auto previous_frontier = job->frontier;
  const auto previous_pipelines = job->pipelines;
  job->frontier = stored;
  job->plan_memo.clear();
  if (s = Retarget(*job); !s.ok() || !(s = tx.Commit()).ok()) {
    job->frontier = previous_frontier;
    job->pipelines = previous_pipelines;
    job->plan_memo.clear();
    return s;
  }
  row.ApplyTo(job);
  job->plan_cache.clear();
  job->progress = 1;
  if (log_) {
    log_("job " + std::to_string(id) + " ready: " + std::to_string(stored->points().size()) +
         " frontier points in " + std::to_string(seconds) + " s");
  }
  return Status::Ok();
}

PipelineState Coordinator::PlanFor(Job& job, double target_time_s) {
  auto memo = job.plan_memo.find(target_time_s);
  if (memo != job.plan_memo.end()) return memo->second;
  if (job.plan_memo.size() >= 64) job.plan_memo.clear();
  return job.plan_memo.emplace(target_time_s, ComputePlan(*job.frontier, target_time_s))
      .first->second;
}

Job* Coordinator::PrecomputePlan(std::unique_lock<std::mutex>& lock, int64_t id,
                                 double target_time_s) {
  Job* job = Find(id);
  if (job == nullptr || job->frontier == nullptr || job->plan_memo.count(target_time_s) > 0 ||
      target_time_s <= TMin(*job->frontier)) {
    return job;
  }
  const std::shared_ptr<const planner::StoredFrontier> frontier = job->frontier;
  lock.unlock();
  PipelineState plan = ComputePlan(*frontier, target_time_s);
  lock.lock();
  job = Find(id);
  if (job != nullptr && job->frontier == frontier) {
    if (job->plan_memo.size() >= 64) job->plan_memo.clear();
    job->plan_memo.emplace(target_time_s, std::move(plan));
  }
  return job;
}

PipelineState Coordinator::ComputePlan(const planner::StoredFrontier& f, double target_time_s) {
  const size_t fastest = f.TMinIndex();
  PipelineState state;
  state.target_time_s = target_time_s;
  if (target_time_s > f.points()[fastest].time_s) {
    // Waiting for a straggler: the plan for T' improved by the discrete local
    // search, for the energy over all of T' (planner/improve.h), within a
    // budget that keeps this call well under a second.
    planner::ImproveOptions options;
    options.objective = planner::DeadlineObjective::kAtDeadline;
    options.max_work = kImproveWork;
    if (auto plan = f.PlanForDeadline(target_time_s, options)) {
      state.point = plan->point;
      state.energy_j = plan->figures.energy_j;
      state.frequencies = std::make_shared<const std::vector<int>>(std::move(plan->frequency_mhz));
      return state;
    }
  }
  state.point = fastest;
  state.energy_j = f.points()[fastest].energy_j;
  state.frequencies = std::make_shared<const std::vector<int>>(f.FrequenciesAt(fastest));
  return state;
}

void Coordinator::RefreshPlans(Job& job) {
  std::map<double, PipelineState> by_target;  // pipelines with one target share its plan
  for (PipelineState& p : job.pipelines) {
    auto it = by_target.find(p.target_time_s);
    if (it == by_target.end())
      it = by_target.emplace(p.target_time_s, PlanFor(job, p.target_time_s)).first;
    const int64_t version = p.version;
    p = it->second;
    p.version = version;
  }
}

Status Coordinator::Retarget(Job& job) {
  const planner::StoredFrontier& f = *job.frontier;
  const size_t fastest = f.TMinIndex();
  const double t_min = f.points()[fastest].time_s;
  double t_prime = 0;
  for (const auto& [p, s] : job.stragglers) t_prime = std::max(t_prime, TPrime(s, t_min));
  job.pipelines.resize(static_cast<size_t>(job.config.spec.dp));
  std::optional<PipelineState> slow, fast;  // each computed once, for every pipeline
  for (int p = 0; p < job.config.spec.dp; ++p) {
    PipelineState next;
    if (t_prime <= t_min || job.stragglers.count(p) > 0) {
      // No straggler, or this is one: as fast as possible.
      if (!fast) fast = PlanFor(job, t_min);
      next = *fast;
    } else {
      if (!slow) slow = PlanFor(job, t_prime);
      next = *slow;
    }
    PipelineState& current = job.pipelines[static_cast<size_t>(p)];
    if (current.version > 0 && current.point == next.point &&
        current.target_time_s == next.target_time_s && current.frequencies != nullptr &&
        *current.frequencies == *next.frequencies) {
      continue;
    }
    next.version = current.version + 1;
    current = next;
    Status s = store_->PutPipeline(
        job.id, {p, current.version, static_cast<int64_t>(current.point), current.target_time_s});
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Reply Coordinator::GetFrontier(int64_t id) {
  std::shared_ptr<const planner::StoredFrontier> frontier;
  double all_max_time = 0, all_max_energy = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Job* job = Find(id);
    if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
    if (job->frontier == nullptr) {
      return Error(Outcome::kConflict, "job " + std::to_string(id) +
                                           " has no frontier yet (state " + StateName(job->state) +
                                           ")");
    }
    frontier = job->frontier;
    all_max_time = job->all_max_time_s;
    all_max_energy = job->all_max_energy_j;
  }
  json points = json::array();
  for (const auto& p : frontier->points()) {
    points.push_back({p.time_s, p.energy_j, p.model_time_s, p.model_energy_j});
  }
  return Ok(Outcome::kOk, {{"energy_scope", "pipeline"},
                           {"columns", {"time_s", "energy_j", "model_time_s", "model_energy_j"}},
                           {"points", points},
                           {"t_min_index", frontier->TMinIndex()},
                           {"all_max", {{"time_s", all_max_time}, {"energy_j", all_max_energy}}}});
}

Reply Coordinator::GetPlan(int64_t id, const std::string& rank_text, const std::string& since,
                           const KnownPlan& known) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  int64_t rank = 0;
  if (!ParseCount(rank_text, &rank))
    return Error(Outcome::kInvalid, "query parameter 'rank' must be a rank number", "rank");
  if (rank >= job->config.ranks()) {
    return Error(Outcome::kInvalid,
                 "rank " + std::to_string(rank) + " is out of range (the job has " +
                     std::to_string(job->config.ranks()) + " ranks)",
                 "rank");
  }
  auto info = job->ranks.find(static_cast<int>(rank));
  if (info == job->ranks.end())
    return Error(Outcome::kNotFound, "rank " + std::to_string(rank) + " is not registered", "rank");
  if (job->state != JobState::kReady) {
    return Error(Outcome::kConflict,
                 "job " + std::to_string(id) + " is " + StateName(job->state) + ", not ready", "");
  }
  const int pipeline = info->second.dp_rank;
  const PipelineState& state = job->pipelines[static_cast<size_t>(pipeline)];
  int64_t since_version = -1;
  if (!since.empty() && !ParseCount(since, &since_version)) {
    return Error(Outcome::kInvalid, "query parameter 'since' must be a version number", "since");
  }
  if ((known.pipeline == pipeline && known.version == state.version) ||
      since_version == state.version) {
    return Reply{Outcome::kNotModified, nullptr, pipeline, state.version};
  }
  const int pp = info->second.pp_rank;
  auto key = std::make_tuple(pipeline, state.version, pp);
  auto cached = job->plan_cache.find(key);
  if (cached == job->plan_cache.end()) {
    const std::vector<int>& freq = *state.frequencies;
    std::vector<const planner::StoredComputation*> mine;
    for (const auto& c : job->frontier->computations()) {
      if (c.gpu == pp) mine.push_back(&c);
    }
    std::sort(mine.begin(), mine.end(),
              [](const auto* a, const auto* b) { return a->order < b->order; });
    json instructions = json::array();
    for (const auto* c : mine) {
      json step = {{"kind", c->overlapped() ? std::string_view("overlap_f_b")
                                            : planner::InstructionName(c->instruction)},
                   {"microbatch", c->microbatch},
                   {"stage", c->stage},
                   {"frequency_mhz", freq[static_cast<size_t>(c->id)]}};
      if (c->overlapped()) {
        // DualPipeV's overlapped forward+backward: the fields above are the forward half.
        step["backward"] = {{"kind", planner::InstructionName(c->overlap.instruction)},
                            {"stage", c->overlap.stage},
                            {"microbatch", c->overlap.microbatch}};
      }
      instructions.push_back(std::move(step));
    }
    if (job->plan_cache.size() > 4096) job->plan_cache.clear();
    cached = job->plan_cache.emplace(key, std::move(instructions)).first;
  }
  Reply r = Ok(Outcome::kOk, {{"job_id", id},
                              {"rank", rank},
                              {"pipeline", pipeline},
                              {"pp_rank", pp},
                              {"version", state.version},
                              {"target_time", state.target_time_s},
                              {"instructions", cached->second}});
  r.plan_pipeline = pipeline;
  r.plan_version = state.version;
  return r;
}

Reply Coordinator::AddStraggler(int64_t id, const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::unique_lock<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  if (auto e = OnlyFields(j, {"pipeline", "slowdown", "iteration_time"})) return *e;
  int64_t pipeline = 0;
  if (auto e = IntField(j, "pipeline", 0, job->config.spec.dp - 1, &pipeline)) return *e;
  if (job->state != JobState::kReady) {
    return Error(Outcome::kConflict,
                 "job " + std::to_string(id) + " is " + StateName(job->state) + ", not ready");
  }
  // A straggler is slower than T_min by at most kMaxSlowdown: beyond, it is a
  // failure to handle, not a pipeline to wait for (and its time a mistake).
  const double t_min = TMin(*job->frontier);
  Straggler s;
  if (auto e = NumberField(j, "slowdown", 1.0, kMaxSlowdown, &s.slowdown, false)) return *e;
  if (auto e = NumberField(j, "iteration_time", t_min, kMaxSlowdown * t_min, &s.iteration_time_s,
                           false)) {
    e->body["error"] = "field 'iteration_time' must be between T_min " + FormatSeconds(t_min) +
                       " s and " + FormatSeconds(kMaxSlowdown * t_min) + " s (" +
                       FormatSeconds(kMaxSlowdown) + " x T_min)";
    return *e;
  }
  if ((s.slowdown > 0) == (s.iteration_time_s > 0)) {
    return Error(Outcome::kInvalid, "give exactly one of 'slowdown' and 'iteration_time'",
                 "slowdown");
  }
  // The others' plan for the new T', computed without the lock (other
  // requests go on meanwhile); then the change, under it.
  double t_prime = TPrime(s, t_min);
  for (const auto& [p, other] : job->stragglers) {
    if (p != pipeline) t_prime = std::max(t_prime, TPrime(other, t_min));
  }
  job = PrecomputePlan(lock, id, t_prime);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  if (job->state != JobState::kReady) {
    return Error(Outcome::kConflict,
                 "job " + std::to_string(id) + " is " + StateName(job->state) + ", not ready");
  }
  // A manual straggler overrides detection: the policy forgets the pipeline and
  // leaves it alone until a DELETE clears it.
  if (job->policy != nullptr) job->policy->Forget(static_cast<int>(pipeline));
  return ChangeStraggler(job, static_cast<int>(pipeline), s);
}

Reply Coordinator::RemoveStraggler(int64_t id, const std::string& pipeline_text) {
  std::unique_lock<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  int64_t pipeline = 0;
  if (!ParseCount(pipeline_text, &pipeline) || pipeline >= job->config.spec.dp) {
    return Error(Outcome::kInvalid,
                 "pipeline must be 0.." + std::to_string(job->config.spec.dp - 1), "pipeline");
  }
  if (job->stragglers.count(static_cast<int>(pipeline)) == 0) {
    return Error(Outcome::kNotFound, "pipeline " + std::to_string(pipeline) + " is not a straggler",
                 "pipeline");
  }
  // The remaining stragglers' T' (if any), computed without the lock.
  if (job->frontier != nullptr) {
    const double t_min = TMin(*job->frontier);
    double t_prime = 0;
    for (const auto& [p, other] : job->stragglers) {
      if (p != pipeline) t_prime = std::max(t_prime, TPrime(other, t_min));
    }
    job = PrecomputePlan(lock, id, t_prime);
    if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
    if (job->stragglers.count(static_cast<int>(pipeline)) == 0) {
      return Error(Outcome::kNotFound,
                   "pipeline " + std::to_string(pipeline) + " is not a straggler", "pipeline");
    }
  }
  // A detected straggler removed by hand: detection starts afresh for it.
  if (job->policy != nullptr) job->policy->Forget(static_cast<int>(pipeline));
  return ChangeStraggler(job, static_cast<int>(pipeline), std::nullopt);
}

Reply Coordinator::ChangeStraggler(Job* job, int pipeline, std::optional<Straggler> straggler) {
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  Status st = straggler ? store_->PutStraggler(
                              job->id,
                              {pipeline, straggler->slowdown, straggler->iteration_time_s,
                               straggler->detected ? "detected" : "manual", straggler->reference_s})
                        : store_->DeleteStraggler(job->id, pipeline);
  if (!st.ok()) return FromStatus(st);
  const auto previous = job->stragglers;
  const auto previous_pipelines = job->pipelines;
  if (straggler) {
    job->stragglers[pipeline] = *straggler;
  } else {
    job->stragglers.erase(pipeline);
  }
  if (st = Retarget(*job); !st.ok() || !(st = tx.Commit()).ok()) {
    job->stragglers = previous;
    job->pipelines = previous_pipelines;
    return FromStatus(st);
  }
  if (log_) {
    log_("job " + std::to_string(job->id) + ": pipeline " + std::to_string(pipeline) +
         (straggler ? " is a straggler" : " recovered"));
  }
  return Ok(Outcome::kOk, JobJson(job));
}

Reply Coordinator::ReportIteration(int64_t id, const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  if (auto e = OnlyFields(j, {"rank", "iteration", "time_s", "energy_j", "mismatches", "phase",
                              "plan_version", "profiling_progress"})) {
    return *e;
  }
  int64_t rank = 0, iteration = 0, mismatches = 0;
  double time_s = 0, energy_j = 0;
  if (auto e = IntField(j, "rank", 0, job->config.ranks() - 1, &rank)) return *e;
  if (auto e = IntField(j, "iteration", 0, INT64_MAX / 2, &iteration)) return *e;
  if (auto e = NumberField(j, "time_s", 0, 1e7, &time_s)) return *e;
  if (auto e = NumberField(j, "energy_j", 0, 1e15, &energy_j)) return *e;
  if (auto e = IntField(j, "mismatches", 0, kMaxMismatches, &mismatches, false)) return *e;
  // Optional: what the iteration ran (measured savings compare baseline with planned ones).
  std::string phase;
  if (auto it = j.find("phase"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || !IsPhase(it->get<std::string>())) {
      return Error(Outcome::kInvalid,
                   "field 'phase' must be one of warmup, baseline, profiling, planned "
                   "(or absent)",
                   "phase");
    }
    phase = it->get<std::string>();
  }
  int64_t plan_version = -1;
  if (auto e = IntField(j, "plan_version", 0, INT64_MAX / 2, &plan_version, false)) return *e;
  double profiling_progress = -1;
  if (auto e = NumberField(j, "profiling_progress", 0, 1, &profiling_progress, false)) return *e;
  auto registered = job->ranks.find(static_cast<int>(rank));
  if (registered == job->ranks.end()) {
    return Error(Outcome::kNotFound, "rank " + std::to_string(rank) + " is not registered", "rank");
  }
  // A report sent twice (a retry) replaces the first.
  auto old = store_->GetIteration(id, rank, iteration);
  if (!old.ok()) return FromStatus(old.status());
  const bool replaced = old->has_value();
  const double old_time = replaced ? (*old)->time_s : 0;
  const double old_energy = replaced ? (*old)->energy_j : 0;
  const int64_t old_mismatches = replaced ? (*old)->mismatches : 0;
  Status st = store_->PutIteration(id, {rank, iteration, time_s, energy_j, mismatches, phase,
                                        registered->second.dp_rank, plan_version});
  if (!st.ok()) return FromStatus(st);
  if (phase == "profiling") {
    ++job->profiling_reports;
    if (profiling_progress >= 0)
      job->profiling_progress[static_cast<int>(rank)] = profiling_progress;
    if (TakesProfile(job->state)) {
      // The job's progress while it profiles: its slowest rank's (ranks not heard from: 0).
      double slowest = 1;
      for (const auto& [r, info] : job->ranks) {
        auto p = job->profiling_progress.find(r);
        slowest = std::min(slowest, p == job->profiling_progress.end() ? 0.0 : p->second);
      }
      if (static_cast<int>(job->ranks.size()) < job->config.ranks()) slowest = 0;
      job->progress = slowest;
      if (job->state == JobState::kRegistering) {
        job->state = JobState::kProfiling;
        if (Status saved = SaveJobRow(*job); !saved.ok()) return FromStatus(saved);
      }
    }
  }
  if (!replaced) ++job->reports;
  job->reported_energy_j += energy_j - old_energy;
  job->reported_time_s += time_s - old_time;
  job->last_iteration = std::max(job->last_iteration, iteration);
  job->mismatches += mismatches - old_mismatches;
  job->iterations_with_mismatches += (mismatches > 0 ? 1 : 0) - (old_mismatches > 0 ? 1 : 0);
  DetectStragglers(job, static_cast<int>(rank), iteration, time_s);
  return Ok(Outcome::kOk, {{"stored", true}});
}

StragglerPolicy& Coordinator::PolicyFor(Job* job) {
  if (job->policy == nullptr) {
    job->policy = std::make_shared<StragglerPolicy>(
        StragglerPolicyOptions{job->config.straggler_threshold, job->config.straggler_iterations});
    // Stragglers declared before a restart are judged as they were.
    for (const auto& [p, s] : job->stragglers) {
      if (s.detected) job->policy->SetDeclared(p, s.iteration_time_s, s.reference_s);
    }
  }
  return *job->policy;
}

void Coordinator::DetectStragglers(Job* job, int rank, int64_t iteration, double time_s) {
  const JobConfig& c = job->config;
  if (!c.straggler_detection || c.spec.dp < 2 || job->state != JobState::kReady ||
      job->frontier == nullptr || iteration <= job->last_observed_iteration) {
    return;
  }
  auto& row = job->pending_times[iteration];
  row[rank] = time_s;                 // a retry replaces
  constexpr size_t kMaxPending = 64;  // iterations some rank has not reported yet
  while (job->pending_times.size() > kMaxPending)
    job->pending_times.erase(job->pending_times.begin());
  if (job->pending_times.count(iteration) == 0 || static_cast<int>(row.size()) < c.ranks()) return;
  // Every rank reported `iteration`: a pipeline's time is the slowest of its ranks.
  std::vector<double> times(static_cast<size_t>(c.spec.dp), 0.0);
  for (const auto& [r, t] : row) {
    auto info = job->ranks.find(r);
    if (info == job->ranks.end()) continue;
    double& slot = times[static_cast<size_t>(info->second.dp_rank)];
    slot = std::max(slot, t);
  }
  job->last_observed_iteration = iteration;
  job->pending_times.erase(job->pending_times.begin(), job->pending_times.upper_bound(iteration));
  std::set<int> manual;
  for (const auto& [p, s] : job->stragglers) {
    if (!s.detected) manual.insert(p);
  }
  StragglerPolicy& policy = PolicyFor(job);
  for (const StragglerDecision& d : policy.Observe(times, manual)) {
    const std::string what = "job " + std::to_string(job->id) + ": iteration " +
                             std::to_string(iteration) + ": pipeline " + std::to_string(d.pipeline);
    std::optional<Straggler> next;
    if (d.kind != StragglerDecision::Kind::kClear) {
      next = Straggler{0, d.time_s, true, d.reference_s};
    }
    if (log_) {
      switch (d.kind) {
        case StragglerDecision::Kind::kDeclare:
          log_(what + " detected as a straggler: " + std::to_string(d.time_s) +
               " s against the others' " + std::to_string(d.reference_s) + " s");
          break;
        case StragglerDecision::Kind::kRetarget:
          log_(what + " straggler re-targeted: " + std::to_string(d.time_s) + " s");
          break;
        case StragglerDecision::Kind::kClear:
          log_(what + " straggler recovered (detected)");
          break;
      }
    }
    Reply r = ChangeStraggler(job, d.pipeline, next);
    if (r.outcome != Outcome::kOk) {
      // Nothing changed: the policy goes back to the job's own view of the pipeline.
      if (log_) log_(what + ": applying the detection failed: " + r.body.value("error", ""));
      auto kept = job->stragglers.find(d.pipeline);
      if (kept != job->stragglers.end() && kept->second.detected) {
        policy.SetDeclared(d.pipeline, kept->second.iteration_time_s, kept->second.reference_s);
      } else {
        policy.Forget(d.pipeline);
      }
      continue;
    }
    if (d.kind == StragglerDecision::Kind::kDeclare) ++job->stragglers_detected;
    if (d.kind == StragglerDecision::Kind::kClear) ++job->stragglers_recovered;
  }
}

Reply Coordinator::GetReport(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  json body = {{"job_id", id},
               {"energy_scope", "job"},  // sums over pipelines (and ranks)
               {"reports", job->reports},
               {"iterations", job->last_iteration + 1},
               {"reported_energy_j", job->reported_energy_j},
               {"plan_mismatches", job->mismatches},
               {"iterations_with_mismatches", job->iterations_with_mismatches},
               {"mean_rank_iteration_time_s",
                job->reports > 0 ? job->reported_time_s / static_cast<double>(job->reports) : 0.0}};
  if (job->frontier != nullptr && !job->pipelines.empty()) {
    // The plan's own figures: every pipeline at its current point against all at maximum clock.
    double planned = 0;
    for (const PipelineState& p : job->pipelines) planned += p.energy_j;
    const double all_max = job->all_max_energy_j * job->config.spec.dp;
    body["planned_energy_per_iteration_j"] = planned;
    body["all_max_energy_per_iteration_j"] = all_max;
    body["planned_saving_pct"] = all_max > 0 ? 100.0 * (1 - planned / all_max) : 0.0;
    // From what the ranks reported: meaningful once every rank reports its energy.
    const double iterations = static_cast<double>(job->last_iteration + 1);
    if (job->reports > 0 && iterations > 0) {
      const double ranks = static_cast<double>(job->config.ranks());
      const double coverage = static_cast<double>(job->reports) / (ranks * iterations);
      body["report_coverage"] = coverage;
      body["estimated_saving_j"] = all_max * iterations * coverage - job->reported_energy_j;
    }
  }
  auto measured = MeasuredSavings(*job);
  if (!measured.ok()) return FromStatus(measured.status());
  body["measured"] = *measured;
  return Ok(Outcome::kOk, body);
}

// Measured savings, from the iteration reports that name their phase. A
// pipeline's iteration counts when every rank of the pipeline reported it in
// the same phase: its energy is the sum over those ranks, its time the
// slowest rank's. Per phase, the mean over such iterations; the job's energy
// is the sum over pipelines, its time the slowest pipeline's.
Result<json> Coordinator::MeasuredSavings(const Job& job) {
  const JobConfig& c = job.config;
  auto phases = store_->MeasuredPhases(job.id, static_cast<int64_t>(c.spec.stages) * c.spec.tp);
  if (!phases.ok()) return phases.status();
  struct Figures {
    int64_t iterations = 0;
    double energy_j = 0, time_s = 0;  // sums
    double energy() const { return energy_j / static_cast<double>(iterations); }
    double time() const { return time_s / static_cast<double>(iterations); }
  };
  std::vector<Figures> baseline(static_cast<size_t>(c.spec.dp)),
      planned(static_cast<size_t>(c.spec.dp));
  for (const PhaseTotals& t : *phases) {
    const auto p = static_cast<size_t>(t.pipeline);
    if (p >= baseline.size()) continue;
    Figures& f = t.phase == "baseline" ? baseline[p] : planned[p];
    f = {t.iterations, t.energy_j, t.time_s};
  }
  auto saving = [](double base, double perseus) -> json {
    return base > 0 ? json(100.0 * (1 - perseus / base)) : json(nullptr);
  };
  auto slowdown = [](double base, double perseus) -> json {
    return base > 0 ? json(100.0 * (perseus / base - 1)) : json(nullptr);
  };
  json pipelines = json::array();
  bool complete = true;
  double base_e = 0, perseus_e = 0, base_t = 0, perseus_t = 0;
  for (size_t p = 0; p < baseline.size(); ++p) {
    const Figures& b = baseline[p];
    const Figures& f = planned[p];
    json entry = {{"pipeline", p},
                  {"baseline_iterations", b.iterations},
                  {"perseus_iterations", f.iterations}};
    if (b.iterations > 0) {
      entry["baseline_j_per_iteration"] = b.energy();
      entry["baseline_time_s_per_iteration"] = b.time();
    }
    if (f.iterations > 0) {
      entry["perseus_j_per_iteration"] = f.energy();
      entry["perseus_time_s_per_iteration"] = f.time();
    }
    if (b.iterations > 0 && f.iterations > 0) {
      entry["saving_pct"] = saving(b.energy(), f.energy());
      entry["slowdown_pct"] = slowdown(b.time(), f.time());
      base_e += b.energy();
      perseus_e += f.energy();
      base_t = std::max(base_t, b.time());
      perseus_t = std::max(perseus_t, f.time());
    } else {
      complete = false;
    }
    if (job.frontier != nullptr && p < job.pipelines.size()) {
      const double model = job.pipelines[p].energy_j;
      entry["model"] = {{"baseline_j_per_iteration", job.all_max_energy_j},
                        {"perseus_j_per_iteration", model},
                        {"saving_pct", saving(job.all_max_energy_j, model)}};
    }
    pipelines.push_back(entry);
  }
  json out = {{"pipelines", pipelines}};
  if (complete && c.spec.dp > 0) {
    out["baseline_j_per_iteration"] = base_e;
    out["perseus_j_per_iteration"] = perseus_e;
    out["saving_pct"] = saving(base_e, perseus_e);
    out["baseline_time_s_per_iteration"] = base_t;
    out["perseus_time_s_per_iteration"] = perseus_t;
    out["slowdown_pct"] = slowdown(base_t, perseus_t);
  } else {
    out["baseline_j_per_iteration"] = nullptr;
    out["perseus_j_per_iteration"] = nullptr;
    out["saving_pct"] = nullptr;
    out["note"] =
        "needs, for every pipeline, iterations every rank reported as phase baseline (at the "
        "highest clock) and as phase planned";
  }
  if (job.frontier != nullptr && !job.pipelines.empty()) {
    double model = 0;
    for (const PipelineState& p : job.pipelines) model += p.energy_j;
    const double all_max = job.all_max_energy_j * c.spec.dp;
    out["model"] = {{"baseline_j_per_iteration", all_max},
                    {"perseus_j_per_iteration", model},
                    {"saving_pct", saving(all_max, model)}};
  }
  return out;
}

CoordinatorStats Coordinator::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  CoordinatorStats s;
  for (const auto& [id, job] : jobs_) {
    ++s.jobs_by_state[StateName(job.state)];
    s.ranks += static_cast<int>(job.ranks.size());
    for (const auto& p : job.pipelines) s.plan_versions += p.version;
    s.solve_seconds += job.solve_seconds;
    s.reported_energy_j += job.reported_energy_j;
    s.mismatches_by_job[id] = {job.mismatches, job.iterations_with_mismatches};
    s.detections_by_job[id] = {job.stragglers_detected, job.stragglers_recovered};
    if (job.profiling_reports > 0 || job.state == JobState::kProfiling) {
      s.profiling_by_job[id] = {job.state == JobState::kProfiling     ? job.progress
                                : job.state == JobState::kRegistering ? 0.0
                                                                      : 1.0,
                                job.profiling_reports};
    }
  }
  return s;
}

}  // namespace perseus::server
