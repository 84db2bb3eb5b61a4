// `perseus emulate`: what Perseus saves on a data-parallel job, with and
// without a straggler, against all-max and EnvPipe.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/emulator/emulator.h"

namespace perseus::cli {
namespace {

struct EmulateArgs {
  job::JobSpec job;
  int pipelines = 0;
  std::vector<std::string> slowdowns = {"1.0"};
  std::vector<std::string> methods = emulator::AllMethodNames();
  bool json = false;
};

int RunEmulate(const EmulateArgs& args) {
  emulator::EmulationOptions options;
  options.pipelines = args.pipelines > 0 ? args.pipelines : args.job.dp;
  auto slowdowns = emulator::ParseSlowdowns(args.slowdowns);
  if (!slowdowns.ok()) return ReportError(slowdowns.status());
  options.slowdowns = slowdowns.value();
  auto methods = emulator::ParseMethodNames(args.methods, "--methods");
  if (!methods.ok()) return ReportError(methods.status());
  options.methods = std::move(methods).value();
  job::JobSpec spec = args.job;
  spec.dp = 1;  // plan one pipeline; the emulator multiplies
  auto planned = PlanJob(spec, TerminalProgress("planning"));
  if (!planned.ok()) return ReportError(planned.status());
  const int64_t gpus = int64_t{planned->job.stages} * planned->job.tp * options.pipelines;
  auto rows = emulator::Emulate(planned->frontier, options);
  if (!rows.ok()) return ReportError(rows.status());

  if (args.json) {
    nlohmann::json out_rows = nlohmann::json::array();
    for (const auto& row : *rows) {
      nlohmann::json r = {{"slowdown", row.slowdown}};
      for (size_t k = 0; k < row.methods.size(); ++k) {
        const auto& m = row.methods[k];
        r[std::string(emulator::MethodName(options.methods[k]))] = {
            {"time", m.time_s}, {"energy", m.energy_j}, {"saving_pct", m.saving_pct}};
      }
      out_rows.push_back(r);
    }
    PrintNotes(planned->job);
    nlohmann::json out = {{"profile", spec.profile_path},
                          {"schedule", planned->job.schedule},
                          {"stages", planned->job.stages},
                          {"microbatches", planned->job.microbatches},
                          {"tp", planned->job.tp},
                          {"pipelines", options.pipelines},
                          {"gpus", gpus},
                          {"notes", planned->job.notes},
                          {"approximations", emulator::MethodApproximations(options.methods)},
                          {"energy_scope", "job"},
                          {"rows", out_rows}};
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::printf(
      "Perseus emulation: %s, %d stages x %d microbatches, TP %d, %d pipelines (%lld GPUs)\n",
      planned->job.schedule.c_str(), planned->job.stages, planned->job.microbatches,
      planned->job.tp, options.pipelines, static_cast<long long>(gpus));
  for (const std::string& note : planned->job.notes) std::printf("  note: %s\n", note.c_str());
  for (const std::string& a : emulator::MethodApproximations(options.methods)) {
    std::printf("  approximation: %s\n", a.c_str());
  }
  std::printf("\n  %8s  %-15s %12s %18s %9s\n", "slowdown", "method", "time (s)", "job energy (J)",
              "saving");
  for (const auto& row : *rows) {
    for (size_t k = 0; k < row.methods.size(); ++k) {
      const auto& m = row.methods[k];
      std::printf("  %8.3f  %-15s %12.4f %18.1f %8.2f%%\n", row.slowdown,
                  std::string(emulator::MethodName(options.methods[k])).c_str(), m.time_s,
                  m.energy_j, m.saving_pct);
    }
  }
  return 0;
}

}  // namespace

void RegisterEmulate(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<EmulateArgs>();
  CLI::App* cmd = app->add_subcommand(
      "emulate",
      "Emulate a data-parallel job: job energy per iteration for all-max, Perseus, EnvPipe and "
      "Zeus, "
      "with a straggler pipeline T'/T_min times slower");
  AddJobOptions(cmd, &args->job);
  cmd->add_option("--pipelines", args->pipelines,
                  "Data-parallel pipelines D, 1..1000000 (default: --dp)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--straggler-slowdown", args->slowdowns,
                  "Straggler slowdowns X = T'/T_min (a list: 1.1,1.2; or START:STOP:STEP)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--methods", args->methods,
                  "Methods to compare (a list): " + emulator::MethodNames())
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->callback([args, exit_code] { *exit_code = RunEmulate(*args); });
}

}  // namespace perseus::cli
