#include "perseus/report/report.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "perseus/job/job.h"
#include "perseus/planner/solver.h"

namespace perseus::report {
namespace {

// A small well-formedness check: every tag closes in order (void elements
// and self-closing tags excepted), attributes are quoted, and no raw '<'
// appears in text.
bool WellFormed(const std::string& html, std::string* why) {
  std::vector<std::string> stack;
  size_t p = 0;
  while ((p = html.find('<', p)) != std::string::npos) {
    size_t q = html.find('>', p);
    if (q == std::string::npos) {
      *why = "unclosed tag";
      return false;
    }
    std::string tag = html.substr(p + 1, q - p - 1);
    p = q + 1;
    if (tag.empty() || tag[0] == '!') continue;
    if (tag.find('<') != std::string::npos) {
      *why = "'<' inside a tag: " + tag;
      return false;
    }
    if (std::count(tag.begin(), tag.end(), '"') % 2 != 0) {
      *why = "unbalanced quotes: " + tag;
      return false;
    }
    const bool closing = tag[0] == '/';
    std::string name =
        tag.substr(closing ? 1 : 0, tag.find_first_of(" />", closing ? 1 : 0) - (closing ? 1 : 0));
    if (closing) {
      if (stack.empty() || stack.back() != name) {
        *why = "</" + name + "> closes " + (stack.empty() ? "nothing" : "<" + stack.back() + ">");
        return false;
      }
      stack.pop_back();
    } else if (tag.back() != '/' && name != "meta") {
      stack.push_back(name);
    }
  }
  if (!stack.empty()) *why = "<" + stack.back() + "> never closed";
  return stack.empty();
}

TEST(ReportTest, WellFormedWithThreeCharts) {
  auto profile = planner::ReadProfileCsv(std::string(PERSEUS_DATA_DIR) +
                                         "/profiles/gpt3-175b+a100_sxm_bf16.csv");
  ASSERT_TRUE(profile.ok());
  job::JobSpec spec;
  spec.stages = 8;
  spec.microbatches = 4;
  spec.blocking_power_w = 83.64;
  auto job = job::PrepareJob(spec, profile.value());
  ASSERT_TRUE(job.ok());
  auto frontier = planner::SolveFrontier(job->problem).value();
  emulator::EmulationOptions eo;
  eo.pipelines = 4;
  eo.slowdowns = {1.0, 1.1, 1.2};
  auto rows = emulator::Emulate(frontier, eo);
  ASSERT_TRUE(rows.ok());
  ReportInput in;
  in.title = "Test <report> & more";
  in.facts = {"8 stages"};
  in.frontier = &frontier;
  in.baselines = {{"envpipe", emulator::RunEnvPipe(frontier.problem()).figures}};
  in.timeline_point = frontier.TMinIndex();
  in.tp = 8;
  in.next_steps = {{"Write the plans", "perseus plan --out <dir>"}};
  in.methods = eo.methods;
  in.rows = rows.value();
  const std::string html = RenderReportHtml(in);
  std::string why;
  EXPECT_TRUE(WellFormed(html, &why)) << why;
  size_t svgs = 0;
  for (size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 3u);
  for (const char* needle :
       {"Iteration time\u2013energy frontier", "T_min plan: iteration timeline, ",
        "Savings against straggler", "iteration time (s)", "energy per iteration", "T_min", "T*",
        "all-max", "critical", "Test &lt;report&gt; &amp; more", "zeus-global",
        "stage 0 (GPUs 0\u20137)", "stage 7 (GPUs 56\u201363)", "forward (plain)",
        "backward (hatched)", "colour: SM frequency", "class=\"tick-label\"", "Next steps",
        "<code>perseus plan --out &lt;dir&gt;</code>"}) {
    EXPECT_NE(html.find(needle), std::string::npos) << needle;
  }
  EXPECT_EQ(html.find("frontier point"), std::string::npos);
  // One box per computation in the timeline: 8 stages x 4 microbatches x (F, B).
  size_t boxes = 0;
  for (size_t p = html.find("<g class=\"box\">"); p != std::string::npos;
       p = html.find("<g class=\"box\">", p + 1))
    ++boxes;
  EXPECT_EQ(boxes, 64u);
  // The well-formedness check itself rejects broken markup.
  EXPECT_FALSE(WellFormed("<html><body></html>", &why));
}

}  // namespace
}  // namespace perseus::report
