// The coordinator's frontier and plan requests, stragglers (manual and
// detected) and the re-targeting they cause.
#include <algorithm>

#include "perseus/common/number_text.h"
#include "src/server/coordinator.h"
#include "src/server/request_fields.h"

namespace perseus::server {

using nlohmann::json;

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
    return Error(Outcome::kConflict,
                 "rank " + std::to_string(rank) + " is not registered (register it first)", "rank");
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
    e->body["error"] = "field 'iteration_time' must be between T_min " + NumberText(t_min) +
                       " s and " + NumberText(kMaxSlowdown * t_min) + " s (" +
                       NumberText(kMaxSlowdown) + " x T_min)";
    return *e;
  }
  if ((s.slowdown > 0) == (s.iteration_time_s > 0)) {
    return Error(Outcome::kInvalid, "give exactly one of 'slowdown' and 'iteration_time'",
                 "slowdown");
  }
  // The others' plan for the new T', computed without the lock (other
  // requests go on meanwhile); then the change, under it.
  job =
      PrecomputePlan(lock, id, TargetAfter(job->stragglers, t_min, static_cast<int>(pipeline), s));
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  if (job->state != JobState::kReady) {
    return Error(Outcome::kConflict,
                 "job " + std::to_string(id) + " is " + StateName(job->state) + ", not ready");
  }
  // A manual straggler overrides detection: the policy forgets the pipeline
  // (and what it decided about it) and leaves it alone until a DELETE clears it.
  Forget(job, static_cast<int>(pipeline));
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
    job = PrecomputePlan(lock, id,
                         TargetAfter(job->stragglers, TMin(*job->frontier),
                                     static_cast<int>(pipeline), std::nullopt));
    if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
    if (job->stragglers.count(static_cast<int>(pipeline)) == 0) {
      return Error(Outcome::kNotFound,
                   "pipeline " + std::to_string(pipeline) + " is not a straggler", "pipeline");
    }
  }
  // A detected straggler removed by hand: detection starts afresh for it.
  Forget(job, static_cast<int>(pipeline));
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

StragglerWatch& Coordinator::WatchFor(Job* job) {
  if (!job->watch) {
    // Stragglers declared before a restart are judged as they were.
    job->watch.emplace();
    for (const auto& [p, s] : job->stragglers) {
      if (s.detected) (*job->watch)[p] = DeclaredWatch(s.iteration_time_s, s.reference_s);
    }
  }
  return *job->watch;
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
  const StragglerPolicyOptions options{c.straggler_threshold, c.straggler_iterations};
  for (const StragglerDecision& d : ObserveIteration(options, times, manual, &WatchFor(job))) {
    job->detections.push_back({d, iteration});
  }
}

void Coordinator::ApplyDetections(std::unique_lock<std::mutex>& lock, int64_t id) {
  // One plan computed without the lock per decision: a decision whose plan
  // went missing meanwhile (the frontier changed) is applied with it computed
  // under the lock rather than waited for again.
  std::optional<std::tuple<int64_t, int, StragglerDecision::Kind>> precomputed;
  for (;;) {
    Job* job = Find(id);
    if (job == nullptr || job->detections.empty()) return;
    if (job->state != JobState::kReady || job->frontier == nullptr) {
      job->detections.clear();  // planning again: detection starts afresh
      job->watch.reset();
      return;
    }
    const Job::Detection front = job->detections.front();
    const StragglerDecision& d = front.decision;
    std::optional<Straggler> next;
    if (d.kind != StragglerDecision::Kind::kClear)
      next = Straggler{0, d.time_s, true, d.reference_s};
    const double target = TargetAfter(job->stragglers, TMin(*job->frontier), d.pipeline, next);
    const auto key = std::make_tuple(front.iteration, d.pipeline, d.kind);
    if (precomputed != key && PlanToPrecompute(*job, target)) {
      precomputed = key;
      PrecomputePlan(lock, id, target);
      continue;  // the job may have changed meanwhile: look again
    }
    job->detections.pop_front();
    const std::string what = "job " + std::to_string(job->id) + ": iteration " +
                             std::to_string(front.iteration) + ": pipeline " +
                             std::to_string(d.pipeline);
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
      // Nothing changed: the watch goes back to the job's own view of the pipeline.
      if (log_) log_(what + ": applying the detection failed: " + r.body.value("error", ""));
      StragglerWatch& watch = WatchFor(job);
      auto kept = job->stragglers.find(d.pipeline);
      if (kept != job->stragglers.end() && kept->second.detected) {
        watch[d.pipeline] = DeclaredWatch(kept->second.iteration_time_s, kept->second.reference_s);
      } else {
        watch.erase(d.pipeline);
      }
      continue;
    }
    if (d.kind == StragglerDecision::Kind::kDeclare) ++job->stragglers_detected;
    if (d.kind == StragglerDecision::Kind::kClear) ++job->stragglers_recovered;
  }
}

void Coordinator::Forget(Job* job, int pipeline) {
  if (job->watch) job->watch->erase(pipeline);
  std::erase_if(job->detections,
                [pipeline](const Job::Detection& d) { return d.decision.pipeline == pipeline; });
}

}  // namespace perseus::server
