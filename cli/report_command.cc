// `perseus report --out DIR`: a self-contained HTML report (DIR/report.html)
// of a job: frontier, plan timeline, savings against straggler slowdown.
// Without --profile it reports on the demo job.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "perseus/common/files.h"
#include "perseus/emulator/emulator.h"
#include "perseus/report/report.h"

namespace perseus::cli {
namespace {

struct ReportArgs {
  job::JobSpec job;
  std::string out_dir;
  double deadline_s = 0;
  int pipelines = 0;
  std::vector<std::string> slowdowns = {"1.0:1.5:0.05"};
};

int RunReport(ReportArgs args) {
  if (args.job.profile_path.empty()) {
    args.job = DemoJobSpec();
    if (args.pipelines == 0) args.pipelines = 1536 / 12;  // the paper's global batch of 1536
  }
  auto slowdowns = emulator::ParseSlowdowns(args.slowdowns);
  if (!slowdowns.ok()) return ReportError(slowdowns.status());
  job::JobSpec spec = args.job;
  const int pipelines = args.pipelines > 0 ? args.pipelines : std::max(1, spec.dp);
  spec.dp = 1;
  auto planned = PlanJob(spec, TerminalProgress("planning"));
  if (!planned.ok()) return ReportError(planned.status());
  const planner::Frontier& f = planned->frontier;
  emulator::EmulationOptions eo;
  eo.pipelines = pipelines;
  eo.slowdowns = slowdowns.value();
  eo.methods = {emulator::Method::kAllMax, emulator::Method::kPerseus, emulator::Method::kEnvPipe,
                emulator::Method::kZeusGlobal, emulator::Method::kZeusPerStage};
  std::vector<planner::Figures> fastest;
  auto rows = emulator::Emulate(f, eo, &fastest);
  if (!rows.ok()) return ReportError(rows.status());

  report::ReportInput in;
  in.title = "Perseus report: " + std::filesystem::path(spec.profile_path).filename().string();
  const auto& j = planned->job;
  in.facts.push_back(j.schedule + ", " + std::to_string(j.stages) + " stages x " +
                     std::to_string(j.microbatches) + " microbatches, TP " + std::to_string(j.tp) +
                     ", " + std::to_string(pipelines) +
                     " pipelines in the straggler emulation; blocking power " +
                     std::to_string(spec.blocking_power_w) + " W per GPU; " + spec.cost_model +
                     " cost model, unit " + std::to_string(spec.unit_time_s) + " s.");
  for (const auto& note : j.notes) in.facts.push_back("Note: " + note);
  for (const std::string& a : emulator::MethodApproximations(eo.methods)) {
    in.facts.push_back("Approximation: " + a);
  }
  in.frontier = &f;
  // The single operating points of EnvPipe and Zeus per-stage (eo.methods[2]
  // and [4]), as the emulation computed them.
  in.baselines.push_back({"EnvPipe", fastest[2]});
  in.baselines.push_back({"Zeus per-stage", fastest[4]});
  in.timeline_point = f.TMinIndex();
  if (args.deadline_s > 0) {
    auto k = f.IndexForDeadline(args.deadline_s);
    if (!k) return ReportError(Status::InvalidInput("--time is faster than T_min"));
    in.timeline_point = *k;
  }
  in.methods = eo.methods;
  in.rows = rows.value();

  std::error_code ec;
  std::filesystem::create_directories(args.out_dir, ec);
  const std::string path = (std::filesystem::path(args.out_dir) / "report.html").string();
  Status written = WriteFileAtomically(path, report::RenderReportHtml(in));
  if (!written.ok()) return ReportError(written);
  std::printf("report written to %s\n", path.c_str());
  return 0;
}

}  // namespace

void RegisterReport(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* cmd = app->add_subcommand(
      "report",
      "Write a self-contained HTML report (frontier, plan timeline, savings against straggler "
      "slowdown) to DIR/report.html; without --profile, for the demo job");
  cmd->add_option("--out", args->out_dir, "Directory for report.html")->required();
  AddJobOptions(cmd, &args->job);
  cmd->get_option("--profile")->required(false);
  cmd->add_option("--time", args->deadline_s, "Show the timeline of the plan for this deadline");
  cmd->add_option("--pipelines", args->pipelines, "Pipelines for the straggler emulation");
  cmd->add_option("--straggler-slowdown", args->slowdowns, "Slowdowns (or START:STOP:STEP)")
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = RunReport(*args); });
}

}  // namespace perseus::cli
