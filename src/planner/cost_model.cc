#include "perseus/planner/cost_model.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace perseus::planner {
namespace {

// Least squares of y ~ a*g + c for fixed g_i = exp(-k*u_i). Returns SSE.
double SolveLinear(const std::vector<double>& u, const std::vector<double>& y, double k, double* a,
                   double* c) {
  const double n = static_cast<double>(u.size());
  double sg = 0, sgg = 0, sy = 0, sgy = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    double g = std::exp(-k * u[i]);
    sg += g;
    sgg += g * g;
    sy += y[i];
    sgy += g * y[i];
  }
  double det = n * sgg - sg * sg;
  if (!(std::fabs(det) > 1e-300)) {
    *a = 0;
    *c = sy / n;
  } else {
    *a = (n * sgy - sg * sy) / det;
    *c = (sy - *a * sg) / n;
  }
  double sse = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    double r = *a * std::exp(-k * u[i]) + *c - y[i];
    sse += r * r;
  }
  return sse;
}

// Linear interpolation on the lower convex hull of points (x strictly increasing).
std::vector<double> ConvexHullValues(const std::vector<ModelPoint>& points, int64_t lo,
                                     int64_t hi) {
  std::vector<ModelPoint> hull;
  for (const ModelPoint& p : points) {
    while (hull.size() >= 2) {
      const ModelPoint& a = hull[hull.size() - 2];
      const ModelPoint& b = hull.back();
      // Remove b if it lies on or above segment a-p.
      double cross = static_cast<double>(b.units - a.units) * (p.effective_j - a.effective_j) -
                     (b.effective_j - a.effective_j) * static_cast<double>(p.units - a.units);
      if (cross <= 0) {
        hull.pop_back();
      } else {
        break;
      }
    }
    hull.push_back(p);
  }
  std::vector<double> values;
  values.reserve(hi - lo + 1);
  size_t seg = 0;
  for (int64_t d = lo; d <= hi; ++d) {
    while (seg + 1 < hull.size() && hull[seg + 1].units < d) ++seg;
    if (hull.size() == 1 || d <= hull[0].units) {
      values.push_back(hull[0].effective_j);
    } else if (seg + 1 >= hull.size()) {
      values.push_back(hull.back().effective_j);
    } else {
      const ModelPoint& a = hull[seg];
      const ModelPoint& b = hull[seg + 1];
      double w = static_cast<double>(d - a.units) / static_cast<double>(b.units - a.units);
      values.push_back(a.effective_j + w * (b.effective_j - a.effective_j));
    }
  }
  return values;
}

}  // namespace

// Every cost model, in the order messages list them.
constexpr CostModel kCostModels[] = {CostModel::kExponential, CostModel::kConvex};

std::string CostModelNames() {
  std::string names;
  for (CostModel model : kCostModels) {
    names += (names.empty() ? "" : " or ") + std::string(CostModelName(model));
  }
  return names;
}

std::string_view CostModelName(CostModel model) {
  return model == CostModel::kExponential ? "exponential" : "convex";
}

bool ParseCostModel(std::string_view text, CostModel* out) {
  for (CostModel model : kCostModels) {
    if (text == CostModelName(model)) {
      *out = model;
      return true;
    }
  }
  return false;
}

bool FitExponential(const std::vector<double>& x, const std::vector<double>& y,
                    ExponentialFit* fit) {
  assert(x.size() == y.size());
  if (x.size() < 3) return false;
  const double x0 = *std::min_element(x.begin(), x.end());
  const double w = *std::max_element(x.begin(), x.end()) - x0;
  if (!(w > 0)) return false;
  std::vector<double> u(x.size());
  for (size_t i = 0; i < x.size(); ++i) u[i] = (x[i] - x0) / w;

  // Grid over k = -b*w in [1e-3, 1e3] (log-spaced), keeping fits with a > 0.
  double best_k = -1, best_sse = std::numeric_limits<double>::infinity();
  const int kGrid = 121;
  for (int i = 0; i < kGrid; ++i) {
    double k = std::pow(10.0, -3.0 + 6.0 * i / (kGrid - 1));
    double a, c;
    double sse = SolveLinear(u, y, k, &a, &c);
    if (a > 0 && sse < best_sse) {
      best_sse = sse;
      best_k = k;
    }
  }
  if (best_k < 0) return false;
  // Golden-section refinement in log k around the best grid point.
  double lo = std::log10(best_k) - 0.05, hi = std::log10(best_k) + 0.05;
  const double phi = (std::sqrt(5.0) - 1) / 2;
  auto eval = [&](double lk) {
    double a, c;
    double sse = SolveLinear(u, y, std::pow(10.0, lk), &a, &c);
    return a > 0 ? sse : std::numeric_limits<double>::infinity();
  };
  double m1 = hi - phi * (hi - lo), m2 = lo + phi * (hi - lo);
  double f1 = eval(m1), f2 = eval(m2);
  for (int it = 0; it < 60; ++it) {
    if (f1 < f2) {
      hi = m2;
      m2 = m1;
      f2 = f1;
      m1 = hi - phi * (hi - lo);
      f1 = eval(m1);
    } else {
      lo = m1;
      m1 = m2;
      f1 = f2;
      m2 = lo + phi * (hi - lo);
      f2 = eval(m2);
    }
  }
  double k = std::pow(10.0, (lo + hi) / 2);
  double a, c;
  double sse = SolveLinear(u, y, k, &a, &c);
  if (!(a > 0) || !(sse <= best_sse)) {
    k = best_k;
    sse = SolveLinear(u, y, k, &a, &c);
  }
  // y = a*exp(-k*(x-x0)/w) + c = (a*exp(k*x0/w)) * exp((-k/w) x) + c
  fit->b = -k / w;
  fit->a = a * std::exp(k * x0 / w);
  fit->c = c;
  fit->sse = sse;
  return std::isfinite(fit->a) && std::isfinite(fit->b) && std::isfinite(fit->c);
}

CostTable BuildCostTable(const std::vector<ModelPoint>& points, CostModel model) {
  assert(!points.empty());
  CostTable table;
  table.min_units = points.front().units;
  table.max_units = points.back().units;
  const int64_t lo = table.min_units, hi = table.max_units;

  std::vector<double> values;
  bool use_convex = model == CostModel::kConvex;
  if (model == CostModel::kExponential) {
    std::vector<double> x, y;
    for (const ModelPoint& p : points) {
      x.push_back(static_cast<double>(p.units));
      y.push_back(p.effective_j);
    }
    ExponentialFit fit;
    if (FitExponential(x, y, &fit)) {
      for (int64_t d = lo; d <= hi; ++d) {
        values.push_back(fit.a * std::exp(fit.b * static_cast<double>(d)) + fit.c);
      }
    } else {
      use_convex = true;
      table.fell_back_to_convex = true;
    }
  }
  if (use_convex) values = ConvexHullValues(points, lo, hi);

  // Integer costs, then enforce exact convexity and monotonicity on the
  // integers: savings s[d] = C[d] - C[d+1] must be >= 0 and non-increasing.
  const size_t n = values.size();
  table.cost.resize(n);
  table.cost[n - 1] = std::llround(values[n - 1] / kCostUnitJoules);
  std::vector<int64_t> saving(n > 0 ? n - 1 : 0);
  for (size_t i = 0; i + 1 < n; ++i) {
    int64_t s = std::llround((values[i] - values[i + 1]) / kCostUnitJoules);
    s = std::max<int64_t>(s, 0);
    if (i > 0) s = std::min(s, saving[i - 1]);
    saving[i] = s;
  }
  for (size_t i = n - 1; i-- > 0;) table.cost[i] = table.cost[i + 1] + saving[i];
  return table;
}

}  // namespace perseus::planner
