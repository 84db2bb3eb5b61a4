#include "perseus/common/status.h"

#include <gtest/gtest.h>

#include <string>

namespace perseus {
namespace {

Result<int> Half(int v) {
  if (v % 2 != 0) return Status::InvalidInput("odd: " + std::to_string(v));
  return v / 2;
}

Result<int> Quarter(int v) {
  PERSEUS_ASSIGN_OR_RETURN(int half, Half(v));
  PERSEUS_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckQuarter(int v) {
  PERSEUS_RETURN_IF_ERROR(Quarter(v).ok() ? Status::Ok() : Quarter(v).status());
  return Status::Ok();
}

TEST(StatusTest, PropagationMacrosReturnTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd: 3");
  EXPECT_EQ(Quarter(5).status().code(), StatusCode::kInvalidInput);
  EXPECT_TRUE(CheckQuarter(4).ok());
  EXPECT_EQ(CheckQuarter(2).message(), "odd: 1");
}

// A status may name the input field at fault; it travels with the status
// through Result and the propagation macros.
TEST(StatusTest, TheFieldAtFaultTravelsWithTheStatus) {
  EXPECT_EQ(Status::InvalidInput("x").field(), "");
  auto named = [](int v) -> Result<int> {
    if (v < 1) return Status::InvalidInput("stages is required").WithField("stages");
    return v;
  };
  auto twice = [&](int v) -> Result<int> {
    PERSEUS_ASSIGN_OR_RETURN(int x, named(v));
    return 2 * x;
  };
  const Status s = twice(0).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(s.message(), "stages is required");
  EXPECT_EQ(s.field(), "stages");
}

// abseil's rule: a Result made from an OK status holds no value, so it is an
// error (kInternal) rather than an OK Result without a value.
TEST(StatusTest, AResultFromAnOkStatusIsAnInternalError) {
  Result<int> r = Status::Ok();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("OK status"), std::string::npos);
}

}  // namespace
}  // namespace perseus
