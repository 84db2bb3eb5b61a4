// Cost models: what the frontier solver sees of one computation between its
// measured points.
//
// Notation. A computation has measured options (real time t, energy e). With
// blocking power P (watts, of the GPUs running it) the *effective energy* is
// e - P*t: at a fixed iteration time only that part of the iteration energy
// depends on the choice. Time is quantised to integer units of tau:
// units(t) = ceil(t / tau) (rounded up, so that a planned duration of d units
// always fits the real time of the option mapped to it; see realized.h).
//
// A cost table gives the model's effective energy for every integer duration d
// in [min_units, max_units], in integer micro-joules, and is by construction
// non-increasing and convex in d: the per-unit saving of slowing down,
// cost[d] - cost[d+1], is >= 0 and non-increasing. Convexity is what makes the
// Phillips–Dessouky unit step optimal; the integers make the max-flow exact.
//
// Models:
//   kConvex       lower convex hull of the Pareto points (units, effective),
//                 linear between hull vertices.
//   kExponential  the paper's fit a*exp(b*d)+c (a > 0, b < 0) by least
//                 squares: for fixed b, (a, c) is linear least squares; b is
//                 found by a log-grid then golden-section search. With fewer
//                 than 3 distinct points, or when the best fit is not convex
//                 and decreasing (a <= 0), it falls back to kConvex, so it
//                 never fails.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "perseus/common/status.h"

namespace perseus::planner {

enum class CostModel { kExponential, kConvex };
std::string_view CostModelName(CostModel model);
bool ParseCostModel(std::string_view text, CostModel* out);
// The names above, for messages and help texts: "exponential or convex".
std::string CostModelNames();

// One unit of model cost, in joules. Costs are integers of this unit.
inline constexpr double kCostUnitJoules = 1e-6;

// A Pareto point of the model: quantised duration and effective energy (J).
struct ModelPoint {
  int64_t units = 0;
  double effective_j = 0;
};

struct CostTable {
  int64_t min_units = 0;
  int64_t max_units = 0;
  std::vector<int64_t> cost;         // cost[d - min_units], micro-joules
  bool fell_back_to_convex = false;  // exponential requested but not usable

  int64_t At(int64_t d) const { return cost[d - min_units]; }
  double JoulesAt(int64_t d) const { return static_cast<double>(At(d)) * kCostUnitJoules; }
};

// REQUIRES: points sorted by units strictly increasing, effective strictly
// decreasing, non-empty.
CostTable BuildCostTable(const std::vector<ModelPoint>& points, CostModel model);

// The exponential fit on its own (exposed for tests). Returns false if no fit
// with a > 0 exists. Fits y = a*exp(b*x) + c.
struct ExponentialFit {
  double a = 0, b = 0, c = 0;
  double sse = 0;
};
bool FitExponential(const std::vector<double>& x, const std::vector<double>& y,
                    ExponentialFit* fit);

}  // namespace perseus::planner
