// Automatic straggler detection: a pure policy fed with every pipeline's
// compute time of one iteration at a time, answering with the decisions to
// take (declare, re-target, clear). No I/O and no clock; the coordinator
// applies its decisions through the same path as manual requests.
#pragma once

#include <deque>
#include <map>
#include <set>
#include <vector>

namespace perseus::server {

struct StragglerPolicyOptions {
  double threshold = 0.05;  // slow: time > (1 + threshold) x the others' median
  // K: consecutive slow iterations to declare or re-target; a declared
  // straggler is cleared when the mean of its last K times, each over its
  // reference, is <= 1 + threshold / 2 (a mean, so one noisy iteration in K
  // does not hold a recovered pipeline back, while one slow in every two does).
  int iterations = 3;
};

struct StragglerDecision {
  enum class Kind { kDeclare, kRetarget, kClear };
  Kind kind = Kind::kDeclare;
  int pipeline = 0;
  double time_s = 0;       // declare/re-target: T', the median of the last K times
  double reference_s = 0;  // the others' median the pipeline was compared with
  bool operator==(const StragglerDecision&) const = default;
};

// What the policy remembers about one pipeline between iterations.
struct PipelineWatch {
  bool declared = false;
  double time_s = 0, reference_s = 0;  // declared: T' and the baseline it was judged against
  std::deque<double> slow_times, slow_references;  // the current run of slow iterations
  std::deque<double> since_declared;               // the last K time/reference ratios
  bool operator==(const PipelineWatch&) const = default;
};

// What the policy remembers about a job, by pipeline: a plain value, so that
// the caller can keep it, copy it, and put back an earlier one.
using StragglerWatch = std::map<int, PipelineWatch>;

// One iteration: times[p] is pipeline p's compute time. `manual`: pipelines
// that are manual stragglers (neither judged nor used as a baseline; their
// watch is dropped). Returns the decisions to take and updates `watch`.
// Iterations must come in increasing order; the caller skips older ones.
std::vector<StragglerDecision> ObserveIteration(const StragglerPolicyOptions& options,
                                                const std::vector<double>& times,
                                                const std::set<int>& manual, StragglerWatch* watch);

// The watch of a straggler declared earlier (e.g. loaded from the database):
// judged against `reference_s` (0: unknown, then against the others' median).
PipelineWatch DeclaredWatch(double time_s, double reference_s);

bool IsDeclared(const StragglerWatch& watch, int pipeline);

}  // namespace perseus::server
