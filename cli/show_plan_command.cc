// `perseus show-plan DIR --time T | --point t_min|t_star|N [--json]`: a plan
// of a directory written by `perseus plan --out`, as a table (per stage, its
// frequencies in execution order) or as JSON.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/common/files.h"
#include "perseus/planner/frontier_io.h"

namespace perseus::cli {
namespace {

struct ShowPlanArgs {
  std::string dir;
  std::string time;   // as typed: its precision is the deadline's (ParseDeadlineText)
  std::string point;  // t_min, t_star or a frontier index
  bool json = false;
};

// A frequency list for a table: runs of one frequency as "1410x3".
std::string RunsText(const std::vector<int>& mhz) {
  std::string text;
  for (size_t i = 0; i < mhz.size();) {
    size_t j = i;
    while (j < mhz.size() && mhz[j] == mhz[i]) ++j;
    if (!text.empty()) text += ' ';
    text += std::to_string(mhz[i]);
    if (j - i > 1) text += "x" + std::to_string(j - i);
    i = j;
  }
  return text;
}

// --point's text to a frontier index.
Result<size_t> PointIndex(const planner::StoredFrontier& frontier, const std::string& text) {
  if (text == "t_min") return frontier.TMinIndex();
  if (text == "t_star") return frontier.TStarIndex();
  const size_t n = frontier.points().size();
  const bool digits = !text.empty() && text.size() <= 9 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoul(text) >= n) {
    return Status::InvalidInput("--point '" + FieldText(text) +
                                "' is not t_min, t_star or a frontier index 0.." +
                                std::to_string(n - 1));
  }
  return static_cast<size_t>(std::stoul(text));
}

nlohmann::json ManifestJson(const planner::PlanManifest& m) {
  return {{"generation", m.generation},
          {"created_utc", m.created_utc},
          {"perseus_version", m.perseus_version},
          {"job", nlohmann::json::parse(planner::PlanJobRecordJson(m.job))}};
}

int RunShowPlan(const ShowPlanArgs& args) {
  if (args.time.empty() == args.point.empty()) {
    return ReportError(Status::InvalidInput("give exactly one of --time T and --point P"));
  }
  std::optional<planner::DeadlineText> deadline;
  if (!args.time.empty()) {
    auto parsed = planner::ParseDeadlineText(args.time);
    if (!parsed.ok()) return ReportError(parsed.status());
    deadline = *parsed;
  }
  auto dir = planner::ReadPlanDir(args.dir);
  if (!dir.ok()) return ReportError(dir.status());
  const planner::StoredFrontier& frontier = dir->frontier;
  planner::StoredPlan plan;
  if (deadline) {
    const double limit = deadline->seconds + deadline->tolerance_s;
    auto found = frontier.PlanForDeadline(limit);
    if (!found) {
      return ReportError(
          Status::NotFound("no plan finishes by " + args.time + " s" +
                           (deadline->tolerance_s > 0
                                ? " (times up to " + planner::TimeText(limit) + " s round to it)"
                                : "") +
                           "; the fastest frontier point takes " +
                           planner::TimeText(frontier.points()[frontier.TMinIndex()].time_s) +
                           " s (--point t_min)"));
    }
    plan = std::move(found).value();
    plan.computations = frontier.computations();
  } else {
    auto index = PointIndex(frontier, args.point);
    if (!index.ok()) return ReportError(index.status());
    plan = planner::PlanAtPoint(frontier, *index);
  }
  if (!std::isfinite(plan.figures.time_s) || !std::isfinite(plan.figures.energy_j) ||
      !std::isfinite(plan.figures.model_time_s) || !std::isfinite(plan.figures.model_energy_j)) {
    return ReportError(Status::InvalidInput(
        args.dir + ": the plan's time or energy is not finite (it overflows a double)"));
  }
  // Per GPU, computations in execution order.
  std::map<int, std::map<int, int>> by_gpu;  // gpu -> order -> computation id
  for (const auto& c : plan.computations) by_gpu[c.gpu][c.order] = c.id;
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& [gpu, ordered] : by_gpu) {
    nlohmann::json frequencies = nlohmann::json::array();
    nlohmann::json instructions = nlohmann::json::array();
    for (const auto& [order, id] : ordered) {
      const auto& c = plan.computations[id];
      frequencies.push_back(plan.frequency_mhz[id]);
      nlohmann::json step = {
          {"instruction", c.overlapped() ? std::string_view("overlap_f_b")
                                         : planner::InstructionName(c.instruction)},
          {"stage", c.stage},
          {"microbatch", c.microbatch},
          {"frequency_mhz", plan.frequency_mhz[id]}};
      if (c.overlapped()) {  // stage and microbatch above are the forward half's
        step["backward"] = {{"instruction", planner::InstructionName(c.overlap.instruction)},
                            {"stage", c.overlap.stage},
                            {"microbatch", c.overlap.microbatch}};
      }
      instructions.push_back(std::move(step));
    }
    gpus.push_back(
        {{"stage", gpu}, {"frequencies_mhz", frequencies}, {"instructions", instructions}});
  }
  nlohmann::json out = {
      {"deadline", deadline ? nlohmann::json(deadline->seconds) : nlohmann::json(nullptr)},
      {"deadline_tolerance",
       deadline ? nlohmann::json(deadline->tolerance_s) : nlohmann::json(nullptr)},
      {"point", plan.point},
      {"t_min_point", frontier.TMinIndex()},
      {"t_star_point", frontier.TStarIndex()},
      {"improved", plan.improved},
      {"moves", plan.moves},
      {"time", plan.figures.time_s},
      {"energy", plan.figures.energy_j},
      {"model_time", plan.figures.model_time_s},
      {"model_energy", plan.figures.model_energy_j},
      {"plan_dir", ManifestJson(dir->manifest)},
      {"stages", gpus}};
  if (args.json) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  const planner::PlanManifest& m = dir->manifest;
  char line[256];
  std::string text;
  if (deadline) {
    text += "plan for a deadline of " + args.time + " s: frontier point " +
            std::to_string(plan.point) +
            (plan.improved ? ", improved by " + std::to_string(plan.moves) + " moves\n"
                           : " (not improved: the directory has no problem.json)\n");
  } else {
    text += "frontier point " + std::to_string(plan.point) + " as stored\n";
  }
  std::snprintf(line, sizeof(line),
                "  time %.4f s, energy %.1f J per pipeline (the point's model: %.4f s, %.1f J)\n",
                plan.figures.time_s, plan.figures.energy_j, plan.figures.model_time_s,
                plan.figures.model_energy_j);
  text += line;
  text += "  from " + args.dir + ", written " + m.created_utc + " by perseus " + m.perseus_version +
          "\n";
  text += "\n  stage  computations  frequencies in execution order (MHz; 1410x3: three in a row)\n";
  for (const auto& stage : gpus) {
    const std::vector<int> mhz = stage["frequencies_mhz"].get<std::vector<int>>();
    std::snprintf(line, sizeof(line), "  %5d  %12zu  ", stage["stage"].get<int>(), mhz.size());
    text += line + RunsText(mhz) + "\n";
  }
  text += "\n  t_min is point " + std::to_string(frontier.TMinIndex()) + ", t_star point " +
          std::to_string(frontier.TStarIndex()) + "; --json for every computation's instruction\n";
  std::cout << text;
  return 0;
}

}  // namespace

void RegisterShowPlan(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ShowPlanArgs>();
  CLI::App* cmd = app->add_subcommand(
      "show-plan",
      "Print the per-stage frequency lists of a plan of a `perseus plan --out` "
      "directory as a table, or with --json as one JSON object (verified against its "
      "plan.json: a changed or half-written directory is refused). --time T: the lowest-energy "
      "frontier point whose realized time is <= T, "
      "improved for T by a discrete local search over the measured frequencies "
      "(\"improved\": true); T stands for every time that rounds to it (12.3456: up to "
      "12.34565), so a time printed by `perseus plan` selects its point. --point: a frontier "
      "point as stored (t_min, t_star, or its index N as \"point\" prints it). \"point\" is "
      "the frontier point the plan started from; \"time\" and \"energy\" are the plan's own, "
      "\"model_time\" and \"model_energy\" the point's; \"plan_dir\" is the job planned");
  cmd->add_option("dir", args->dir, "Directory written by `perseus plan --out`")->required();
  CLI::Option* time = cmd->add_option("--time", args->time, "Iteration time deadline T in seconds");
  CLI::Option* point =
      cmd->add_option("--point", args->point, "A frontier point: t_min, t_star or an index N");
  time->excludes(point);
  cmd->add_flag("--json", args->json,
                "Print one JSON object (with every computation's instruction) instead of a table");
  cmd->callback([args, exit_code] { *exit_code = RunShowPlan(*args); });
}

}  // namespace perseus::cli
