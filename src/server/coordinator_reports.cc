// The coordinator's iteration reports and the report with measured savings.
#include <algorithm>
#include <cmath>

#include "src/server/coordinator.h"
#include "src/server/request_fields.h"

namespace perseus::server {

using nlohmann::json;

Reply Coordinator::ReportIteration(int64_t id, const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::unique_lock<std::mutex> lock(mu_);
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
    return Error(Outcome::kConflict,
                 "rank " + std::to_string(rank) + " is not registered (register it first)", "rank");
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
  // The report is stored; what detection decided is applied before the reply
  // (so the next plan poll sees it), each plan computed without the lock.
  ApplyDetections(lock, id);
  return Ok(Outcome::kOk, {{"stored", true}});
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

}  // namespace perseus::server
