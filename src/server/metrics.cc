#include "src/server/metrics.h"

#include <cstdio>

#include "src/server/job_state.h"

namespace perseus::server {
namespace {

std::string Number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

}  // namespace

void Metrics::Observe(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, status}];
  Histogram& h = latency_[route];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::Reject(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_[reason];
}

std::string Metrics::Render(const CoordinatorStats& stats, int open_connections) {
  std::string out;
  out += "# HELP perseus_jobs Jobs by state.\n# TYPE perseus_jobs gauge\n";
  for (JobState s : kJobStates) {
    const std::string state(JobStateName(s));
    auto it = stats.jobs_by_state.find(state);
    out += "perseus_jobs{state=\"" + state + "\"} " +
           std::to_string(it == stats.jobs_by_state.end() ? 0 : it->second) + "\n";
  }
  out += "# HELP perseus_ranks Registered ranks.\n# TYPE perseus_ranks gauge\n";
  out += "perseus_ranks " + std::to_string(stats.ranks) + "\n";
  out +=
      "# HELP perseus_plan_versions Sum of every pipeline's plan version.\n"
      "# TYPE perseus_plan_versions gauge\n";
  out += "perseus_plan_versions " + std::to_string(stats.plan_versions) + "\n";
  out +=
      "# HELP perseus_frontier_solve_seconds Total frontier computation time.\n"
      "# TYPE perseus_frontier_solve_seconds gauge\n";
  out += "perseus_frontier_solve_seconds " + Number(stats.solve_seconds) + "\n";
  out +=
      "# HELP perseus_reported_energy_joules Energy the ranks reported.\n"
      "# TYPE perseus_reported_energy_joules gauge\n";
  out += "perseus_reported_energy_joules " + Number(stats.reported_energy_j) + "\n";
  // A counter with one line per job: `value` picks it from the job's entry of `by_job`.
  // (`type` "gauge" for a gauge; the value is written as a number either way.)
  auto per_job = [&out](const char* name, const char* help, const auto& by_job, auto value,
                        const char* type = "counter") {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [job, entry] : by_job) {
      out += std::string(name) + "{job=\"" + std::to_string(job) + "\"} " +
             Number(static_cast<double>(value(entry))) + "\n";
    }
  };
  using M = CoordinatorStats::Mismatches;
  using D = CoordinatorStats::Detections;
  per_job("perseus_plan_mismatches_total", "Plan mismatches the ranks reported, by job.",
          stats.mismatches_by_job, [](const M& m) { return m.total; });
  per_job("perseus_iterations_with_mismatches_total",
          "Iteration reports (one per rank and iteration) with at least one plan mismatch, by "
          "job.",
          stats.mismatches_by_job, [](const M& m) { return m.iterations; });
  per_job("perseus_stragglers_detected_total", "Stragglers the detection declared, by job.",
          stats.detections_by_job, [](const D& d) { return d.detected; });
  per_job("perseus_stragglers_recovered_total",
          "Detected stragglers the detection cleared, by job.", stats.detections_by_job,
          [](const D& d) { return d.recovered; });
  using P = CoordinatorStats::Profiling;
  per_job(
      "perseus_profiling_progress",
      "In-job profiling: the fraction done by the job's slowest rank (1 once profiled), by "
      "job.",
      stats.profiling_by_job, [](const P& p) { return p.progress; }, "gauge");
  per_job("perseus_profiling_iterations_total",
          "Iteration reports (one per rank and iteration) of in-job profiling, by job.",
          stats.profiling_by_job, [](const P& p) { return p.iterations; });
  std::lock_guard<std::mutex> lock(mu_);
  out +=
      "# HELP perseus_http_requests_total HTTP requests by route and status.\n"
      "# TYPE perseus_http_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out += "perseus_http_requests_total{route=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
  }
  out +=
      "# HELP perseus_http_rejected_total HTTP requests and connections refused, by reason.\n"
      "# TYPE perseus_http_rejected_total counter\n";
  for (const auto& [reason, count] : rejected_) {
    out += "perseus_http_rejected_total{reason=\"" + reason + "\"} " + std::to_string(count) + "\n";
  }
  out +=
      "# HELP perseus_http_connections_open HTTP connections open.\n"
      "# TYPE perseus_http_connections_open gauge\n";
  out += "perseus_http_connections_open " + std::to_string(open_connections) + "\n";
  out +=
      "# HELP perseus_http_request_seconds HTTP request latency by route.\n"
      "# TYPE perseus_http_request_seconds histogram\n";
  for (const auto& [route, h] : latency_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      out += "perseus_http_request_seconds_bucket{route=\"" + route + "\",le=\"" +
             Number(kBuckets[i]) + "\"} " + std::to_string(h.buckets[i]) + "\n";
    }
    out += "perseus_http_request_seconds_bucket{route=\"" + route + "\",le=\"+Inf\"} " +
           std::to_string(h.count) + "\n";
    out += "perseus_http_request_seconds_sum{route=\"" + route + "\"} " + Number(h.sum) + "\n";
    out += "perseus_http_request_seconds_count{route=\"" + route + "\"} " +
           std::to_string(h.count) + "\n";
  }
  return out;
}

}  // namespace perseus::server
