// The straggler-detection policy against hand-made sequences of pipeline times.
#include "src/server/straggler_policy.h"

#include <gtest/gtest.h>

namespace perseus::server {
namespace {

using Kind = StragglerDecision::Kind;

// The options and the watch a job keeps between iterations.
struct Policy {
  StragglerPolicyOptions options;
  StragglerWatch watch;
  bool declared(int pipeline) const { return IsDeclared(watch, pipeline); }
};

// Feeds each row; returns every decision with the row index it came at.
std::vector<std::pair<size_t, StragglerDecision>> Feed(Policy& policy,
                                                       const std::vector<std::vector<double>>& rows,
                                                       const std::set<int>& manual = {}) {
  std::vector<std::pair<size_t, StragglerDecision>> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const auto& d : ObserveIteration(policy.options, rows[i], manual, &policy.watch))
      out.emplace_back(i, d);
  }
  return out;
}

TEST(StragglerPolicyTest, NoiseBelowTheThresholdNeverDeclares) {
  Policy policy{{0.05, 3}, {}};
  std::vector<std::vector<double>> rows;
  for (int i = 0; i < 100; ++i) {
    const double wobble = (i % 7) * 0.007;  // at most 4.2% slower
    rows.push_back({1.0, 1.0 + wobble, 1.0 - wobble / 2, 1.0 + (i % 3) * 0.01});
  }
  EXPECT_TRUE(Feed(policy, rows).empty());
}

TEST(StragglerPolicyTest, KMinusOneSlowIterationsDoNotDeclareAndKDo) {
  Policy policy{{0.05, 3}, {}};
  // Two slow, one normal, two slow: never three in a row.
  auto none = Feed(policy, {{1, 1.2}, {1, 1.2}, {1, 1.0}, {1, 1.2}, {1, 1.2}, {1, 1.01}});
  EXPECT_TRUE(none.empty());
  auto declared = Feed(policy, {{1, 1.2}, {1, 1.3}, {1, 1.25}});
  ASSERT_EQ(declared.size(), 1u);
  EXPECT_EQ(declared[0].first, 2u);
  EXPECT_EQ(declared[0].second, (StragglerDecision{Kind::kDeclare, 1, 1.25, 1.0}));
  EXPECT_TRUE(policy.declared(1));
  EXPECT_FALSE(policy.declared(0));
}

TEST(StragglerPolicyTest, RecoveryNeedsTheMeanOfTheLastKWithinTheMargin) {
  Policy policy{{0.05, 3}, {}};
  ASSERT_EQ(Feed(policy, {{1, 1.2}, {1, 1.2}, {1, 1.2}}).size(), 1u);
  // Once declared the other pipeline runs slowed to 1.2: that is not a baseline.
  EXPECT_TRUE(Feed(policy, {{1.2, 1.2}, {1.2, 1.2}, {1.2, 1.2}}).empty());
  // Two normal, one still slow, two normal: no window of three has a mean within 2.5%.
  EXPECT_TRUE(Feed(policy, {{1.2, 1.0}, {1.2, 1.01}, {1.2, 1.2}, {1.2, 1.0}, {1.2, 1.0}}).empty());
  auto cleared = Feed(policy, {{1.2, 1.0}});
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].second.kind, Kind::kClear);
  EXPECT_EQ(cleared[0].second.pipeline, 1);
  EXPECT_FALSE(policy.declared(1));
}

// The shared CI machine: a recovered pipeline's times scatter around the
// reference, and one iteration in three may be 4% slow. The mean of K still
// clears it; a run of K in-margin iterations (the rule before) would not have.
TEST(StragglerPolicyTest, OneNoisyIterationInKDoesNotHoldARecoveryBack) {
  Policy policy{{0.05, 3}, {}};
  ASSERT_EQ(Feed(policy, {{1, 1.2}, {1, 1.2}, {1, 1.2}}).size(), 1u);
  auto d = Feed(policy, {{1.2, 1.0}, {1.2, 1.04}, {1.2, 0.99}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].first, 2u);
  EXPECT_EQ(d[0].second.kind, Kind::kClear);
  EXPECT_FALSE(policy.declared(1));
  // Below the threshold, the same noise never declares (it needs K slow in a row).
  EXPECT_TRUE(Feed(policy, {{1, 1.04}, {1, 1.06}, {1, 1.0}, {1, 1.06}, {1, 1.06}}).empty());
}

TEST(StragglerPolicyTest, BetweenTheMarginsNeitherRecoversNorRedeclares) {
  Policy policy{{0.10, 2}, {}};
  ASSERT_EQ(Feed(policy, {{1, 1.5}, {1, 1.5}}).size(), 1u);
  // 1.07 is neither slow (> 1.10) nor recovered (<= 1.05): it stays declared.
  EXPECT_TRUE(Feed(policy, {{1.5, 1.07}, {1.5, 1.07}, {1.5, 1.07}, {1.5, 1.07}}).empty());
  EXPECT_TRUE(policy.declared(1));
  ASSERT_EQ(Feed(policy, {{1.5, 1.04}, {1.5, 1.04}}).size(), 1u);
  EXPECT_FALSE(policy.declared(1));
}

TEST(StragglerPolicyTest, AlternatingNoiseAroundTheThresholdDoesNotFlap) {
  Policy policy{{0.05, 3}, {}};
  std::vector<std::vector<double>> rows;
  for (int i = 0; i < 60; ++i) rows.push_back({1.0, i % 2 == 0 ? 1.06 : 1.04});
  EXPECT_TRUE(Feed(policy, rows).empty());
  // Declared, then alternating slow/just-above-recovery: it stays, with no re-target.
  ASSERT_EQ(Feed(policy, {{1, 1.3}, {1, 1.3}, {1, 1.3}}).size(), 1u);
  rows.clear();
  for (int i = 0; i < 60; ++i) rows.push_back({1.3, i % 2 == 0 ? 1.3 : 1.0});
  EXPECT_TRUE(Feed(policy, rows).empty());
  EXPECT_TRUE(policy.declared(1));
}

TEST(StragglerPolicyTest, RetargetsWhenTheStragglersTimeChangesByMoreThanTheThreshold) {
  Policy policy{{0.05, 3}, {}};
  ASSERT_EQ(Feed(policy, {{1, 1.2}, {1, 1.2}, {1, 1.2}}).size(), 1u);
  // 1.24 is within 5% of 1.2: no change.
  EXPECT_TRUE(Feed(policy, {{1.2, 1.24}, {1.2, 1.24}, {1.2, 1.24}, {1.2, 1.24}}).empty());
  auto moved = Feed(policy, {{1.2, 1.5}, {1.2, 1.5}, {1.2, 1.5}});
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].first, 1u);  // the median of the last K: two of three at 1.5
  EXPECT_EQ(moved[0].second, (StragglerDecision{Kind::kRetarget, 1, 1.5, 1.0}));
}

TEST(StragglerPolicyTest, OneOfFourAgainstTheOthersMedian) {
  Policy policy{{0.05, 2}, {}};
  auto d = Feed(policy, {{1.0, 1.02, 1.3, 0.99}, {1.01, 1.0, 1.3, 1.0}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].second.pipeline, 2);
  EXPECT_DOUBLE_EQ(d[0].second.time_s, 1.3);
}

TEST(StragglerPolicyTest, ManualStragglersAreNeitherJudgedNorABaseline) {
  Policy policy{{0.05, 2}, {}};
  // Pipeline 0 is manual and slow; 1 and 2 are alike; nothing to declare.
  EXPECT_TRUE(Feed(policy, {{2.0, 1.0, 1.0}, {2.0, 1.0, 1.0}, {2.0, 1.0, 1.0}}, {0}).empty());
  EXPECT_FALSE(policy.declared(0));
  // A declared straggler taken over manually is forgotten.
  ASSERT_EQ(Feed(policy, {{1.0, 1.5, 1.0}, {1.0, 1.5, 1.0}}).size(), 1u);
  policy.watch.erase(1);
  EXPECT_FALSE(policy.declared(1));
}

TEST(StragglerPolicyTest, OnePipelineHasNoBaseline) {
  Policy policy{{0.05, 1}, {}};
  EXPECT_TRUE(Feed(policy, {{1.0}, {5.0}, {9.0}}).empty());
}

TEST(StragglerPolicyTest, TheWatchIsAValueThatCanBePutBack) {
  // A caller that could not apply a decision restores the watch it had: the
  // same iterations then give the same decision again.
  Policy policy{{0.05, 2}, {}};
  ASSERT_TRUE(Feed(policy, {{1.0, 1.5}}).empty());
  const StragglerWatch before = policy.watch;
  const auto first = Feed(policy, {{1.0, 1.5}});
  ASSERT_EQ(first.size(), 1u);
  EXPECT_NE(policy.watch, before);
  policy.watch = before;
  EXPECT_EQ(Feed(policy, {{1.0, 1.5}}), first);
}

TEST(StragglerPolicyTest, ADeclaredStragglerWithoutAReferenceUsesTheOthers) {
  Policy policy{{0.05, 2}, {}};
  policy.watch[0] = DeclaredWatch(1.4, 0);
  EXPECT_TRUE(Feed(policy, {{1.4, 1.4}}).empty());
  auto d = Feed(policy, {{1.0, 1.0}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].second.kind, Kind::kClear);
}

}  // namespace
}  // namespace perseus::server
