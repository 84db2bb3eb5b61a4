#include "perseus/common/median.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace perseus {
namespace {

TEST(MedianTest, OddAndEvenListsAndTheEmptyOne) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 2, 3}), 2.5);
  EXPECT_DOUBLE_EQ(Median({7}), 7);
  EXPECT_DOUBLE_EQ(Median({5, 5, 1, 9}), 5);
  EXPECT_DOUBLE_EQ(Median({}), 0);
}

TEST(MedianTest, IsTheMiddleOfTheSortedList) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<double> v(1 + rng() % 20);
    for (double& x : v) x = static_cast<double>(rng() % 10);
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    const double expected = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    EXPECT_DOUBLE_EQ(Median(v), expected) << trial;
  }
}

}  // namespace
}  // namespace perseus
