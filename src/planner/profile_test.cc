#include "perseus/planner/profile.h"

#include <gtest/gtest.h>

#include <string>

namespace perseus::planner {
namespace {

constexpr char kHeader[] = "stage,instruction,frequency,time,energy\n";

// Parses `body` after the standard header and returns the error message ("" if it parsed).
std::string ErrorOf(const std::string& text) {
  auto result = ParseProfileCsv(text, "p.csv");
  if (result.ok()) return "";
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidInput);
  return result.status().message();
}

TEST(ProfileTest, ParsesRowsInAnyColumnOrderAndIgnoresExtraColumns) {
  auto result = ParseProfileCsv(
      "energy,time,note,instruction,stage,frequency\r\n"
      "10.5,0.25,x,forward,0,1410\r\n"
      "\r\n"
      "8,0.3,y,forward,0,1200\n"
      "20,0.5,z,backward,0,1410\n"
      "3,0.1,w,backward_input,1,1410\n",
      "p.csv");
  ASSERT_TRUE(result.ok()) << result.status().message();
  const Profile& p = result.value();
  EXPECT_EQ(p.num_stages, 2);
  const auto* fwd = p.Find(0, Instruction::kForward);
  ASSERT_NE(fwd, nullptr);
  ASSERT_EQ(fwd->size(), 2u);
  EXPECT_EQ((*fwd)[0].frequency_mhz, 1410);
  EXPECT_DOUBLE_EQ((*fwd)[0].time_s, 0.25);
  EXPECT_DOUBLE_EQ((*fwd)[0].energy_j, 10.5);
  EXPECT_EQ((*fwd)[1].line, 4);
  EXPECT_NE(p.Find(1, Instruction::kBackwardInput), nullptr);
  EXPECT_EQ(p.Find(1, Instruction::kForward), nullptr);
}

TEST(ProfileTest, ScaleMultipliesTimesAndEnergies) {
  auto result = ParseProfileCsv(std::string(kHeader) + "0,forward,1000,0.5,4\n", "p.csv");
  ASSERT_TRUE(result.ok());
  Profile p = result.value();
  ScaleProfile(&p, 10, 80);
  EXPECT_DOUBLE_EQ(p.Find(0, Instruction::kForward)->front().time_s, 5);
  EXPECT_DOUBLE_EQ(p.Find(0, Instruction::kForward)->front().energy_j, 320);
}

struct BadInput {
  const char* name;
  std::string text;
  std::string expected;  // substring of the message, which starts with "p.csv:LINE:"
};

class ProfileBadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(ProfileBadInputTest, NamesFileLineAndProblem) {
  const BadInput& c = GetParam();
  std::string message = ErrorOf(c.text);
  EXPECT_NE(message.find(c.expected), std::string::npos) << "message: " << message;
}

const std::string H = kHeader;

INSTANTIATE_TEST_SUITE_P(
    Cases, ProfileBadInputTest,
    ::testing::Values(
        BadInput{"Empty", "", "p.csv:1: empty file"},
        BadInput{"OnlyHeader", H, "p.csv:2: no data rows"},
        BadInput{"MissingColumn", "stage,instruction,frequency,time\n0,forward,1,1\n",
                 "p.csv:1: missing column 'energy'"},
        BadInput{"DuplicateColumn", "stage,stage,instruction,frequency,time,energy\n",
                 "p.csv:1: column 'stage' appears twice"},
        BadInput{"FieldCount", H + "0,forward,1000,1\n", "p.csv:2: expected 5 fields"},
        BadInput{"StageNotInteger", H + "x,forward,1000,1,1\n", "p.csv:2: stage 'x'"},
        BadInput{"StageNegative", H + "-1,forward,1000,1,1\n", "p.csv:2: stage '-1'"},
        BadInput{"UnknownInstruction", H + "0,fwd,1000,1,1\n",
                 "p.csv:2: unknown instruction 'fwd'"},
        BadInput{"FrequencyNotNumber", H + "0,forward,high,1,1\n", "p.csv:2: frequency 'high'"},
        BadInput{"TimeNotNumber", H + "0,forward,1000,1s,1\n",
                 "p.csv:2: time '1s' is not a number"},
        BadInput{"TimeNaN", H + "0,forward,1000,nan,1\n", "p.csv:2: time is not finite"},
        BadInput{"TimeInf", H + "0,forward,1000,inf,1\n", "p.csv:2: time is not finite"},
        BadInput{"TimeZero", H + "0,forward,1000,0,1\n", "p.csv:2: time 0 must be positive"},
        BadInput{"TimeNegative", H + "0,forward,1000,-0.5,1\n",
                 "p.csv:2: time -0.5 must be positive"},
        BadInput{"EnergyEmpty", H + "0,forward,1000,1,\n", "p.csv:2: energy '' is not a number"},
        BadInput{"EnergyNaN", H + "0,forward,1000,1,NaN\n", "p.csv:2: energy is not finite"},
        BadInput{"TimeHex", H + "0,forward,1000,0x1p3,1\n",
                 "p.csv:2: time '0x1p3' is not a number"},
        BadInput{"EnergyHex", H + "0,forward,1000,1,0x10\n",
                 "p.csv:2: energy '0x10' is not a number"},
        BadInput{"FrequencyHex", H + "0,forward,0x10,1,1\n", "p.csv:2: frequency '0x10'"},
        BadInput{"TimeOverflows", H + "0,forward,1000,1e999,1\n", "p.csv:2: time is not finite"},
        BadInput{"LongFieldCut", H + "0,forward,1000," + std::string(5000, '1') + "s,1\n",
                 "p.csv:2: time '" + std::string(60, '1') + "...' is not a number"},
        BadInput{"EnergyNegative", H + "0,forward,1000,1,-2\n",
                 "p.csv:2: energy -2 must not be negative"},
        BadInput{"Duplicate", H + "0,forward,1000,1,1\n1,forward,1000,1,1\n0,forward,1000,2,2\n",
                 "p.csv:4: duplicate row for stage 0 forward at 1000 MHz (first given on line 2)"},
        BadInput{"StageGap", H + "0,forward,1000,1,1\n2,forward,1000,1,1\n", "stage 1 has no rows"},
        BadInput{"NoStageZero", H + "1,forward,1000,1,1\n", "stage 0 has no rows"},
        BadInput{"TpRankNotInteger",
                 "stage,instruction,frequency,time,energy,tp_rank\n0,forward,1000,1,1,x\n",
                 "p.csv:2: tp_rank 'x'"},
        BadInput{"TpRankDuplicate",
                 "stage,instruction,frequency,time,energy,tp_rank\n0,forward,1000,1,1,1\n"
                 "0,forward,1000,1,1,0\n0,forward,1000,2,2,1\n",
                 "p.csv:4: duplicate row for stage 0 forward at 1000 MHz on tp_rank 1"}),
    [](const ::testing::TestParamInfo<BadInput>& p) { return std::string(p.param.name); });

TEST(ProfileTest, MissingFileIsNotFound) {
  auto result = ReadProfileCsv("/nonexistent/profile.csv");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("/nonexistent/profile.csv"), std::string::npos);
}

TEST(ProfileTest, ShippedProfilesParse) {
  for (const char* name : {"gpt3-175b+a100_sxm_bf16.csv", "bloom+a100_sxm_bf16.csv"}) {
    auto result = ReadProfileCsv(std::string(PERSEUS_DATA_DIR) + "/profiles/" + name);
    ASSERT_TRUE(result.ok()) << result.status().message();
    EXPECT_EQ(result.value().num_stages, 8) << name;
    for (int s = 0; s < 8; ++s) {
      EXPECT_NE(result.value().Find(s, Instruction::kForward), nullptr);
      EXPECT_NE(result.value().Find(s, Instruction::kBackward), nullptr);
    }
  }
}

TEST(ProfileTest, InstructionNamesRoundTrip) {
  for (Instruction i : {Instruction::kForward, Instruction::kBackward, Instruction::kBackwardInput,
                        Instruction::kBackwardWeight}) {
    Instruction parsed;
    ASSERT_TRUE(ParseInstruction(InstructionName(i), &parsed));
    EXPECT_EQ(parsed, i);
  }
  Instruction parsed;
  EXPECT_FALSE(ParseInstruction("Forward ", &parsed));
}

}  // namespace
}  // namespace perseus::planner
