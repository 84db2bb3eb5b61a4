// The coordinator: opening over a store, loading (defensively), the job row,
// and the figures /metrics shows. Requests: coordinator_jobs.cc (jobs, ranks,
// profiles), coordinator_planning.cc (the planning workers and the plans for
// target times), coordinator_plans.cc (frontier, plans, stragglers),
// coordinator_reports.cc (iteration reports and the report).
#include "src/server/coordinator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "src/server/request_fields.h"
#include "src/server/sqlite_job_store.h"

namespace perseus::server {

using nlohmann::json;

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
namespace {

constexpr std::string_view kNotLoaded = "not loaded: ";

// Whether FailLoad failed the job (its first reason is kept).
bool NotLoaded(const Job& job) {
  return job.state == JobState::kFailed && job.reason.rfind(kNotLoaded, 0) == 0;
}

}  // namespace

void Coordinator::FailLoad(Job* job, const std::string& what) {
  if (NotLoaded(*job)) return;
  job->state = JobState::kFailed;
  job->reason = std::string(kNotLoaded) + what;
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
    JobRow::FromValues(stored.row).ApplyTo(&job);
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
    if (NotLoaded(job)) continue;
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
    if (NotLoaded(job)) continue;
    for (const StoredStraggler& st : stored.stragglers) {
      if (!in_range(st.pipeline, 0, c.spec.dp - 1) || !std::isfinite(st.slowdown) ||
          !std::isfinite(st.iteration_time_s) || st.slowdown < 0 || st.iteration_time_s < 0) {
        FailLoad(&job, "a stragglers row is out of range");
        break;
      }
      job.stragglers[static_cast<int>(st.pipeline)] =
          Straggler{st.slowdown, st.iteration_time_s, st.source == "detected", st.reference_time_s};
    }
    if (NotLoaded(job)) continue;
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
                job.planning_attempts,
                job.warnings};
}

JobRow JobRow::FromValues(const JobRowValues& v) {
  JobRow row{ParseJobState(v.state).value_or(JobState::kFailed),
             v.reason,
             v.profile_csv,
             v.all_max_time_s,
             v.all_max_energy_j,
             v.solve_seconds,
             v.planning_attempts,
             {}};
  // Written by Values(); anything else (an edited database) is ignored.
  const json warnings = json::parse(v.warnings, nullptr, false);
  if (warnings.is_array()) {
    for (const json& w : warnings) {
      if (w.is_string()) row.warnings.push_back(w.get<std::string>());
    }
  }
  return row;
}

void JobRow::ApplyTo(Job* job) const {
  job->state = state;
  job->reason = reason;
  job->profile_csv = profile_csv;
  job->all_max_time_s = all_max_time_s;
  job->all_max_energy_j = all_max_energy_j;
  job->solve_seconds = solve_seconds;
  job->planning_attempts = planning_attempts;
  job->warnings = warnings;
}

JobRowValues JobRow::Values() const {
  return JobRowValues{StateName(state),  reason,
                      profile_csv,       all_max_time_s,
                      all_max_energy_j,  solve_seconds,
                      planning_attempts, warnings.empty() ? std::string() : json(warnings).dump()};
}

Status Coordinator::SaveJobRow(int64_t id, const JobRow& row) {
  return store_->SaveJobRow(id, row.Values());
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
