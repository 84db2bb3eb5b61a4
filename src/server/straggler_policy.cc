#include "src/server/straggler_policy.h"

#include <algorithm>
#include <cmath>

#include "perseus/common/median.h"

namespace perseus::server {

namespace {
double Mean(const std::deque<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}
}  // namespace

PipelineWatch DeclaredWatch(double time_s, double reference_s) {
  PipelineWatch w;
  w.declared = true;
  w.time_s = time_s;
  w.reference_s = reference_s;
  return w;
}

bool IsDeclared(const StragglerWatch& watch, int pipeline) {
  auto it = watch.find(pipeline);
  return it != watch.end() && it->second.declared;
}

std::vector<StragglerDecision> ObserveIteration(const StragglerPolicyOptions& options,
                                                const std::vector<double>& times,
                                                const std::set<int>& manual,
                                                StragglerWatch* watch) {
  std::vector<StragglerDecision> out;
  const int n = static_cast<int>(times.size());
  const auto k = static_cast<size_t>(options.iterations);
  const double th = options.threshold;
  std::set<int> declared_before;  // as the iteration began
  for (const auto& [p, s] : *watch) {
    if (s.declared) declared_before.insert(p);
  }
  for (int p = 0; p < n; ++p) {
    if (manual.count(p) > 0) {
      watch->erase(p);
      continue;
    }
    PipelineWatch& s = (*watch)[p];
    // The baseline: the other pipelines that are neither stragglers (declared
    // or manual) nor this one; a declared straggler keeps the baseline it was
    // declared against, since the others then run plans slowed to its pace.
    double reference = 0;
    if (s.declared && s.reference_s > 0) {
      reference = s.reference_s;
    } else {
      std::vector<double> others;
      for (int q = 0; q < n; ++q) {
        if (q != p && manual.count(q) == 0 && declared_before.count(q) == 0)
          others.push_back(times[q]);
      }
      if (others.empty()) continue;
      reference = Median(others);
    }
    if (!(reference > 0)) continue;
    const double t = times[static_cast<size_t>(p)];
    const bool slow = t > (1 + th) * reference;
    if (slow) {
      s.slow_times.push_back(t);
      s.slow_references.push_back(reference);
      while (s.slow_times.size() > k) {
        s.slow_times.pop_front();
        s.slow_references.pop_front();
      }
    } else {
      s.slow_times.clear();
      s.slow_references.clear();
    }
    if (s.declared) {
      s.since_declared.push_back(t / reference);
      while (s.since_declared.size() > k) s.since_declared.pop_front();
    }
    if (!s.declared) {
      if (s.slow_times.size() == k) {
        const double t_prime = Median({s.slow_times.begin(), s.slow_times.end()});
        const double ref = Median({s.slow_references.begin(), s.slow_references.end()});
        s = DeclaredWatch(t_prime, ref);
        out.push_back({StragglerDecision::Kind::kDeclare, p, t_prime, ref});
      }
    } else if (s.since_declared.size() == k &&
               Mean(s.since_declared) <= 1 + th / 2) {  // hysteresis: th/2
      const double ref = s.reference_s;
      watch->erase(p);
      out.push_back({StragglerDecision::Kind::kClear, p, 0, ref});
    } else if (s.slow_times.size() == k) {
      const double t_prime = Median({s.slow_times.begin(), s.slow_times.end()});
      if (std::abs(t_prime - s.time_s) > th * s.time_s) {
        s.time_s = t_prime;
        s.slow_times.clear();
        s.slow_references.clear();
        out.push_back({StragglerDecision::Kind::kRetarget, p, t_prime, s.reference_s});
      }
    }
  }
  return out;
}

}  // namespace perseus::server
