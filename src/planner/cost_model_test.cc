#include "perseus/planner/cost_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

namespace perseus::planner {
namespace {

int64_t Micro(double joules) { return std::llround(joules / kCostUnitJoules); }

void ExpectConvexNonIncreasing(const CostTable& t) {
  ASSERT_EQ(static_cast<int64_t>(t.cost.size()), t.max_units - t.min_units + 1);
  for (int64_t d = t.min_units; d + 1 <= t.max_units; ++d) {
    EXPECT_GE(t.At(d), t.At(d + 1)) << "not non-increasing at " << d;
    if (d + 2 <= t.max_units) {
      EXPECT_GE(t.At(d) - t.At(d + 1), t.At(d + 1) - t.At(d + 2)) << "not convex at " << d;
    }
  }
}

TEST(CostModelTest, ConvexModelInterpolatesTheHull) {
  CostTable t = BuildCostTable({{2, 10}, {3, 7}, {4, 6}}, CostModel::kConvex);
  EXPECT_EQ(t.min_units, 2);
  EXPECT_EQ(t.max_units, 4);
  EXPECT_EQ(t.At(2), Micro(10));
  EXPECT_EQ(t.At(3), Micro(7));
  EXPECT_EQ(t.At(4), Micro(6));
  EXPECT_FALSE(t.fell_back_to_convex);
}

TEST(CostModelTest, ConvexModelDropsPointsAboveTheHull) {
  // (3, 9) lies above the segment (2, 10)-(6, 2): the hull passes at 8 there.
  CostTable t = BuildCostTable({{2, 10}, {3, 9}, {6, 2}}, CostModel::kConvex);
  EXPECT_EQ(t.At(3), Micro(8));
  EXPECT_EQ(t.At(4), Micro(6));
  EXPECT_EQ(t.At(5), Micro(4));
  ExpectConvexNonIncreasing(t);
}

TEST(CostModelTest, SinglePointIsAConstant) {
  for (CostModel m : {CostModel::kConvex, CostModel::kExponential}) {
    CostTable t = BuildCostTable({{5, -3.5}}, m);
    EXPECT_EQ(t.min_units, 5);
    EXPECT_EQ(t.max_units, 5);
    EXPECT_EQ(t.At(5), Micro(-3.5));
  }
}

TEST(CostModelTest, ExponentialFitRecoversExactParameters) {
  std::vector<double> x, y;
  for (int i = 0; i < 12; ++i) {
    x.push_back(100 + 7 * i);
    y.push_back(50 * std::exp(-0.02 * x.back()) + 3);
  }
  ExponentialFit fit;
  ASSERT_TRUE(FitExponential(x, y, &fit));
  EXPECT_NEAR(fit.b, -0.02, 1e-4);
  EXPECT_NEAR(fit.a, 50, 0.5);
  EXPECT_NEAR(fit.c, 3, 1e-3);
  EXPECT_LT(fit.sse, 1e-8);
}

TEST(CostModelTest, ExponentialNeedsThreePointsAndFallsBackToConvex) {
  ExponentialFit fit;
  EXPECT_FALSE(FitExponential({1, 2}, {5, 4}, &fit));
  CostTable t = BuildCostTable({{1, 5}, {3, 4}}, CostModel::kExponential);
  EXPECT_TRUE(t.fell_back_to_convex);
  CostTable convex = BuildCostTable({{1, 5}, {3, 4}}, CostModel::kConvex);
  EXPECT_EQ(t.cost, convex.cost);
}

TEST(CostModelTest, ExponentialFallsBackWhenNoDecreasingConvexFitExists) {
  // Concave data: the best a*exp(b*x)+c with a > 0 does not exist on the grid
  // or is poor; either way the table must be convex and non-increasing.
  CostTable t = BuildCostTable({{1, 10}, {2, 9.9}, {3, 9.5}, {4, 1}}, CostModel::kExponential);
  ExpectConvexNonIncreasing(t);
}

TEST(CostModelTest, TablesAreConvexAndNonIncreasingOnRandomPoints) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<ModelPoint> points;
    int64_t units = 1 + rng() % 50;
    double e = 100 * u(rng) - 20;
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      points.push_back({units, e});
      units += 1 + rng() % 30;
      e -= 0.01 + 10 * u(rng);
    }
    for (CostModel m : {CostModel::kConvex, CostModel::kExponential}) {
      CostTable t = BuildCostTable(points, m);
      EXPECT_EQ(t.min_units, points.front().units);
      EXPECT_EQ(t.max_units, points.back().units);
      ExpectConvexNonIncreasing(t);
      if (m == CostModel::kConvex) {
        // The hull never lies above a measured point and meets both ends, up
        // to rounding: each per-unit saving is rounded to a micro-joule and
        // clamped to keep the integers convex, so the table may drift from
        // the real-valued hull by under one micro-joule per unit.
        const int64_t slack = 1 + (t.max_units - t.min_units);
        for (const ModelPoint& p : points) EXPECT_LE(t.At(p.units), Micro(p.effective_j) + slack);
        EXPECT_LE(std::llabs(t.At(points.front().units) - Micro(points.front().effective_j)),
                  slack);
        EXPECT_LE(std::llabs(t.At(points.back().units) - Micro(points.back().effective_j)), slack);
      }
    }
  }
}

TEST(CostModelTest, NamesParse) {
  CostModel m;
  ASSERT_TRUE(ParseCostModel("exponential", &m));
  EXPECT_EQ(m, CostModel::kExponential);
  ASSERT_TRUE(ParseCostModel("convex", &m));
  EXPECT_EQ(CostModelName(m), "convex");
  EXPECT_FALSE(ParseCostModel("linear", &m));
}

}  // namespace
}  // namespace perseus::planner
