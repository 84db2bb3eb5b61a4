// The coordinator's planning: the workers (smallest job first, a time budget,
// cancellation), storing a frontier, and the plans for target times.
#include <algorithm>
#include <chrono>

#include "perseus/planner/improve.h"
#include "perseus/planner/solver.h"
#include "src/server/coordinator.h"
#include "src/server/request_fields.h"

namespace perseus::server {

using nlohmann::json;

void Coordinator::Enqueue(int64_t id) {
  queue_.push_back(id);
  queue_cv_.notify_one();
}

int64_t Coordinator::PlanningSize(int64_t id) {
  // Computations per pipeline, as the limits count them (0: the job went).
  const Job* job = Find(id);
  if (job == nullptr) return 0;
  const JobConfig& c = job->config;
  return static_cast<int64_t>(c.spec.stages) * c.spec.microbatches * c.spec.virtual_stages;
}

std::optional<std::deque<int64_t>::iterator> Coordinator::Runnable() {
  // Smallest job first (ties in arrival order): a large job never holds back
  // the small ones queued behind it. Large jobs leave one worker to the
  // others: while planning_threads - 1 of them run, the next large one waits,
  // so a small job never waits for large ones (only a 1-thread server has no
  // worker to spare).
  if (queue_.empty()) return std::nullopt;
  auto best = queue_.begin();
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (PlanningSize(*it) < PlanningSize(*best)) best = it;
  }
  const int large_lanes = std::max(1, options_.planning_threads - 1);
  if (PlanningSize(*best) > options_.large_job_size && large_running_ >= large_lanes) {
    return std::nullopt;
  }
  return best;
}

void Coordinator::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && planning_running_ == 0; });
}

void Coordinator::PlanLoop() {
  for (;;) {
    int64_t id = 0;
    bool large = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [&] { return stop_ || Runnable().has_value(); });
      if (stop_) return;
      const auto next = *Runnable();
      id = *next;
      queue_.erase(next);
      if (Find(id) == nullptr) continue;
      large = PlanningSize(id) > options_.large_job_size;
      if (large) ++large_running_;
      ++planning_running_;
    }
    Plan(id);
    std::lock_guard<std::mutex> lock(mu_);
    --planning_running_;
    if (large) {
      --large_running_;
      queue_cv_.notify_all();  // a large job queued behind it may run now
    }
    idle_cv_.notify_all();
  }
}

void Coordinator::Plan(int64_t id) {
  JobConfig config;
  std::string profile_csv;
  std::optional<BlockingPowerUsed> blocking;
  std::shared_ptr<const job::PreparedJob> prepared;  // PutProfile's, if this server built it
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
    prepared = std::move(job->prepared);
  }
  // Plan without the lock: other requests (and other plannings) go on.
  if (options_.on_planning) options_.on_planning(id);
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
    // The planning problem: the one PutProfile built and checked, or (after a
    // restart) built again from the stored profile.
    auto problem = [&]() -> Result<std::shared_ptr<const job::PreparedJob>> {
      std::optional<planner::Profile> profile;
      if (prepared == nullptr) {
        PERSEUS_ASSIGN_OR_RETURN(profile, planner::ParseProfileCsv(profile_csv, "profile"));
      }
      if (!blocking) {
        return Status::InvalidInput(
            "no blocking power: the job was created without blocking_power_w and no rank's "
            "measurements carried one");
      }
      if (prepared != nullptr) return prepared;
      PERSEUS_ASSIGN_OR_RETURN(job::PreparedJob built,
                               job::PrepareJob(config.spec, std::move(*profile), options_.limits));
      return std::make_shared<const job::PreparedJob>(std::move(built));
    }();
    if (!problem.ok()) {
      files = problem.status();
    } else {
      planner::SolverOptions solver;
      solver.should_stop = should_stop;
      auto frontier = job::SolveJob(
          **problem,
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

namespace {

// Keeps `plan` in the job's memo (at most 64 targets: beyond, it starts afresh).
const PipelineState& Remember(Job& job, double target_time_s, PipelineState plan) {
  if (job.plan_memo.size() >= 64) job.plan_memo.clear();
  return job.plan_memo.emplace(target_time_s, std::move(plan)).first->second;
}

}  // namespace

PipelineState Coordinator::PlanFor(Job& job, double target_time_s) {
  auto memo = job.plan_memo.find(target_time_s);
  if (memo != job.plan_memo.end()) return memo->second;
  return Remember(job, target_time_s, ComputePlan(*job.frontier, target_time_s));
}

Job* Coordinator::PrecomputePlan(std::unique_lock<std::mutex>& lock, int64_t id,
                                 double target_time_s) {
  Job* job = Find(id);
  if (job == nullptr || !PlanToPrecompute(*job, target_time_s)) return job;
  const std::shared_ptr<const planner::StoredFrontier> frontier = job->frontier;
  lock.unlock();
  if (options_.while_unlocked) options_.while_unlocked();
  PipelineState plan = ComputePlan(*frontier, target_time_s);
  lock.lock();
  job = Find(id);
  if (job != nullptr && job->frontier == frontier) Remember(*job, target_time_s, std::move(plan));
  return job;
}

bool Coordinator::PlanToPrecompute(const Job& job, double target_time_s) {
  return job.frontier != nullptr && job.plan_memo.count(target_time_s) == 0 &&
         target_time_s > TMin(*job.frontier);
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

}  // namespace perseus::server
