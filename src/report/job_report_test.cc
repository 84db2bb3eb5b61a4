// RenderJobReportHtml: the measured figures of a job on a coordinator, and
// bodies with absent or null figures (no crash; an em dash in their place).
#include <gtest/gtest.h>

#include <string>

#include "nlohmann/json.hpp"
#include "perseus/report/report.h"

namespace perseus::report {
namespace {

using nlohmann::json;

const std::string kDash = "\u2014";

TEST(JobReportTest, ShowsTheMeasuredFiguresPerPipelineAndForTheJob) {
  const json job = {{"job_id", 3},
                    {"config", {{"name", "gpt3 <4x2>"}, {"stages", 4}, {"dp", 2}}},
                    {"state", "ready"},
                    {"progress", 1.0},
                    {"blocking_power", {{"w", 83.64}, {"source", "config"}}},
                    {"stragglers", json::array()}};
  const json pipeline = {{"pipeline", 0},
                         {"baseline_iterations", 2},
                         {"perseus_iterations", 3},
                         {"baseline_j_per_iteration", 400.0},
                         {"perseus_j_per_iteration", 320.0},
                         {"baseline_time_s_per_iteration", 1.0},
                         {"perseus_time_s_per_iteration", 1.1},
                         {"saving_pct", 20.0},
                         {"slowdown_pct", 10.0},
                         {"model",
                          {{"baseline_j_per_iteration", 500.0},
                           {"perseus_j_per_iteration", 450.0},
                           {"saving_pct", 10.0}}}};
  const json report = {{"job_id", 3},
                       {"reports", 40},
                       {"iterations", 5},
                       {"plan_mismatches", 0},
                       {"iterations_with_mismatches", 0},
                       {"measured",
                        {{"pipelines", {pipeline}},
                         {"baseline_j_per_iteration", 400.0},
                         {"perseus_j_per_iteration", 320.0},
                         {"saving_pct", 20.0},
                         {"baseline_time_s_per_iteration", 1.0},
                         {"perseus_time_s_per_iteration", 1.1},
                         {"slowdown_pct", 10.0}}}};
  const std::string html = RenderJobReportHtml(job, report);
  EXPECT_NE(html.find("Perseus job 3: gpt3 &lt;4x2&gt;"), std::string::npos) << html;
  // job::BlockingPowerText's wording, and where the figure came from.
  EXPECT_NE(html.find("Blocking power: 83.64 W per GPU (1-GPU stages), from config."),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<b>20.00%</b>"), std::string::npos);
  EXPECT_NE(html.find("400.0"), std::string::npos);
  // The bars' energy scale: nice ticks from 0 up to the largest bar (800 J).
  EXPECT_NE(html.find("class=\"tick-label\""), std::string::npos);
  EXPECT_NE(html.find("text-anchor=\"middle\">0</text>"), std::string::npos);
  EXPECT_NE(html.find("320.0"), std::string::npos);
  EXPECT_NE(html.find("10.00%"), std::string::npos);
  EXPECT_NE(html.find("2 / 3"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<4x2>"), std::string::npos);  // escaped
}

TEST(JobReportTest, NullAndAbsentFiguresShowAsADash) {
  const json report = {{"job_id", 9},
                       {"reports", 0},
                       {"measured",
                        {{"pipelines",
                          {{{"pipeline", 0}, {"baseline_iterations", 0}, {"perseus_iterations", 0}},
                           {{"pipeline", 1}, {"saving_pct", nullptr}, {"model", nullptr}}}},
                         {"baseline_j_per_iteration", nullptr},
                         {"perseus_j_per_iteration", nullptr},
                         {"saving_pct", nullptr},
                         {"note", "needs baseline and planned iterations"}}}};
  const std::string html = RenderJobReportHtml(json::object(), report);
  EXPECT_NE(html.find("Perseus job 9"), std::string::npos) << html;
  EXPECT_NE(html.find("<b>" + kDash + "</b>"), std::string::npos) << html;
  EXPECT_NE(html.find("needs baseline and planned iterations"), std::string::npos);
  EXPECT_NE(html.find("No measured energy yet"), std::string::npos);
  EXPECT_NE(html.find("</html>"), std::string::npos);
}

TEST(JobReportTest, BodiesOfTheWrongShapeDoNotCrash) {
  for (const json& body : {json(nullptr), json::array(), json("text"), json(3),
                           json{{"measured", "x"}, {"config", 1}, {"pipelines", {1, 2}}}}) {
    const std::string html = RenderJobReportHtml(body, body);
    EXPECT_NE(html.find("</html>"), std::string::npos);
    EXPECT_NE(html.find(kDash), std::string::npos);
  }
}

}  // namespace
}  // namespace perseus::report
