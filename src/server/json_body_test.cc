// ParseJsonBody: the limits are checked before any DOM is built.
#include "src/server/json_body.h"

#include <gtest/gtest.h>

#include <string>

namespace perseus::server {
namespace {

TEST(ParseJsonBody, ParsesAnObjectWithinTheLimits) {
  auto parsed = ParseJsonBody(R"({"stages": 4, "names": ["a", "b"], "nested": {"x": [1, 2.5]}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed.value()["stages"], 4);
  EXPECT_EQ(parsed.value()["nested"]["x"][1], 2.5);
}

TEST(ParseJsonBody, RefusesABodyLargerThanMaxBytes) {
  JsonLimits limits;
  limits.max_bytes = 10;
  auto parsed = ParseJsonBody(R"({"stages": 4})", limits);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(parsed.status().message(), "the JSON body is 13 bytes, more than the limit of 10");
}

TEST(ParseJsonBody, RefusesDeepNestingBeforeBuildingIt) {
  // 32 MB of '[' (2.4 GB as a DOM before this check): refused at level 65.
  JsonLimits limits;
  limits.max_bytes = 64 << 20;
  const std::string body(32 << 20, '[');
  auto parsed = ParseJsonBody(body, limits);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "the JSON body nests arrays and objects deeper than 64 levels (the limit)");
}

TEST(ParseJsonBody, AcceptsNestingUpToMaxDepth) {
  JsonLimits limits;
  limits.max_depth = 3;
  EXPECT_TRUE(ParseJsonBody(R"({"a": [{"b": 1}]})", limits).ok());
  auto parsed = ParseJsonBody(R"({"a": [{"b": [1]}]})", limits);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "the JSON body nests arrays and objects deeper than 3 levels (the limit)");
}

TEST(ParseJsonBody, RefusesTooManyValues) {
  JsonLimits limits;
  limits.max_values = 4;
  EXPECT_TRUE(ParseJsonBody("[1, 2, 3]", limits).ok());  // the array and three numbers
  auto parsed = ParseJsonBody("[1, 2, 3, 4]", limits);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "the JSON body has more than 4 values (the limit)");
}

TEST(ParseJsonBody, NamesWhereTheSyntaxIsWrong) {
  auto parsed = ParseJsonBody(R"({"stages": 4,})");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(parsed.status().message().rfind("the request body is not valid JSON: parse error at "
                                            "line 1, column 14",
                                            0),
            0u)
      << parsed.status().message();
}

TEST(ParseJsonBody, RefusesAnEmptyBodyAndTrailingGarbage) {
  EXPECT_FALSE(ParseJsonBody("").ok());
  EXPECT_FALSE(ParseJsonBody("{} x").ok());
  EXPECT_TRUE(ParseJsonBody("  {}  ").ok());
}

}  // namespace
}  // namespace perseus::server
