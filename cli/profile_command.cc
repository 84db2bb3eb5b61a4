// `perseus profile`: the online profiler on the sim backend. It measures every
// stage's forward and backward at every frequency, high to low, stopping early
// as described in include/perseus/gpu/profiler.h, and writes the planner's CSV.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/gpu_backend.h"
#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/common/files.h"
#include "perseus/common/median.h"
#include "perseus/common/number_text.h"
#include "perseus/gpu/profiler.h"
#include "perseus/job/job.h"

namespace perseus::cli {
namespace {

using nlohmann::json;

struct ProfileArgs {
  BackendArgs backend;
  gpu::ProfilerOptions options;
  std::vector<int> stages;  // empty: all
  std::vector<std::string> stages_misused;
  std::string out;
  bool json = false;
};

// Largest relative deviation of the measured rows from the profile driving the sim.
void Deviation(const planner::Profile& truth, const gpu::StageProfile& stage, double* time,
               double* energy) {
  for (const gpu::SweepRow& row : stage.rows) {
    const auto* rows = truth.Find(stage.stage, row.instruction);
    if (rows == nullptr) continue;
    for (const auto& m : *rows) {
      if (m.frequency_mhz != row.frequency_mhz) continue;
      *time = std::max(*time, std::fabs(row.time_s / m.time_s - 1));
      if (m.energy_j > 0) *energy = std::max(*energy, std::fabs(row.energy_j / m.energy_j - 1));
    }
  }
}

int RunProfile(const ProfileArgs& args) {
  if (args.backend.backend != "sim") {
    return ReportError(Status::InvalidInput(
        "the CLI profiles simulated GPUs only (--backend sim): real GPUs are profiled inside the "
        "training job, where the work runs (C++ library: perseus::gpu::FrequencySweep "
        "with MeasurementWindow, or ProfileStage with an InstructionRunner)"));
  }
  if (!args.stages_misused.empty()) {
    return ReportError(Status::InvalidInput(
        "--stages is the number of pipeline stages in every other command; give the stages to "
        "profile as a list with --only-stages (e.g. --only-stages 0,3)"));
  }
  auto opened = OpenCommandBackend(args.backend);
  if (!opened.ok()) return ReportError(opened.status());
  auto& sim = static_cast<gpu::SimBackend&>(**opened);
  std::vector<int> stages = args.stages;
  if (stages.empty()) {
    for (int s = 0; s < sim.device_count(); ++s) stages.push_back(s);
  }
  for (int s : stages) {
    if (auto d = gpu::DeviceAt(sim, s); !d.ok()) return ReportError(d.status());
  }
  const bool tty = isatty(STDERR_FILENO) != 0;
  std::vector<gpu::StageProfile> results;
  for (size_t k = 0; k < stages.size(); ++k) {
    gpu::SimGpu& device = sim.sim_device(stages[k]);
    gpu::SimRunner runner(device);
    auto progress = [&](double fraction) {
      if (!tty) return;
      const double overall =
          (static_cast<double>(k) + fraction) / static_cast<double>(stages.size());
      const int filled = static_cast<int>(overall * 30);
      std::fprintf(stderr, "\rprofiling stage %d/%zu [%-30s] %3.0f%%", stages[k], stages.size(),
                   std::string(static_cast<size_t>(filled), '#').c_str(), overall * 100);
      std::fflush(stderr);
    };
    auto result = gpu::ProfileStage(device, device, runner, stages[k], args.options, progress);
    if (!result.ok()) return ReportError(result.status());
    results.push_back(std::move(result).value());
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  const std::string csv = gpu::ProfileCsv(results);
  // The blocking power the plan uses: one figure per GPU, the median of the
  // stages' measurements (as the coordinator takes the ranks').
  std::vector<double> blocking;
  for (const gpu::StageProfile& r : results) blocking.push_back(r.blocking_power_w);
  const double blocking_w = Median(blocking);  // blocking stays in stage order
  const std::string meta_path = args.out.empty() ? "" : job::ProfileMetaPath(args.out);
  if (!args.out.empty()) {
    // The CSV, then what plan takes from beside it (PrepareJob reads it when
    // no blocking power is given).
    if (Status s = WriteFileAtomically(args.out, csv); !s.ok()) return ReportError(s);
    json meta = {{"blocking_power_w", blocking_w},
                 {"blocking_power_w_by_stage", blocking},
                 {"profile", args.out},
                 {"backend", args.backend.backend},
                 {"written_by", "perseus profile"}};
    if (Status s = WriteFileAtomically(meta_path, meta.dump(2) + "\n"); !s.ok()) {
      return ReportError(s);
    }
  }
  json summary = json::array();
  for (const gpu::StageProfile& r : results) {
    double dt = 0, de = 0;
    Deviation(sim.profile(), r, &dt, &de);
    int dropped = 0, kept = 0;
    for (const auto& row : r.rows) {
      dropped += row.samples_dropped;
      kept += row.samples_kept;
    }
    summary.push_back({{"stage", r.stage},
                       {"frequencies_swept", r.frequencies_swept},
                       {"frequencies_supported", r.frequencies_supported},
                       {"stopped_early_at_mhz", r.stopped_early_at},
                       {"rows", r.rows.size()},
                       {"samples_kept", kept},
                       {"samples_dropped", dropped},
                       {"blocking_power_w", r.blocking_power_w},
                       {"max_time_deviation", dt},
                       {"max_energy_deviation", de}});
  }
  if (args.json) {
    std::cout << json{{"out", args.out.empty() ? json(nullptr) : json(args.out)},
                      {"meta", meta_path.empty() ? json(nullptr) : json(meta_path)},
                      {"blocking_power_w", blocking_w},
                      {"sim_profile", sim.profile().source},
                      {"stages", summary}}
                     .dump(2)
              << std::endl;
    return 0;
  }
  if (args.out.empty()) std::cout << csv;
  // The table goes to stderr when the CSV is on stdout.
  FILE* table = args.out.empty() ? stderr : stdout;
  std::fprintf(table, "%-6s %-14s %-13s %-16s %-12s %-22s\n", "Stage", "Frequencies", "Stopped at",
               "Samples dropped", "Blocking W", "Max deviation t / E");
  for (const json& s : summary) {
    const int stopped = s["stopped_early_at_mhz"].get<int>();
    std::fprintf(
        table, "%-6d %3d of %-7d %-13s %-16d %-12.2f %5.2f%% / %5.2f%%\n", s["stage"].get<int>(),
        s["frequencies_swept"].get<int>(), s["frequencies_supported"].get<int>(),
        stopped == 0 ? "-" : (std::to_string(stopped) + " MHz").c_str(),
        s["samples_dropped"].get<int>(), s["blocking_power_w"].get<double>(),
        100 * s["max_time_deviation"].get<double>(), 100 * s["max_energy_deviation"].get<double>());
  }
  if (!args.out.empty()) {
    std::fprintf(table,
                 "profile written to %s; blocking power %s W per GPU (median of the stages) to "
                 "%s, where perseus plan --profile %s takes it\n",
                 args.out.c_str(), NumberText(blocking_w).c_str(), meta_path.c_str(),
                 args.out.c_str());
  } else {
    std::fprintf(table,
                 "blocking power %s W per GPU (median of the stages): give it to perseus plan as "
                 "--blocking-power %s, or use --out FILE to keep it beside the profile\n",
                 NumberText(blocking_w).c_str(), NumberText(blocking_w).c_str());
  }
  return 0;
}

}  // namespace

void RegisterProfile(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ProfileArgs>();
  CLI::App* cmd = app->add_subcommand(
      "profile",
      "Measure the planner's input: time and energy of every forward/backward at every SM "
      "frequency, high to low, stopping once energy only rises. In the CLI the work is simulated "
      "(--backend sim) from a profile, with optional noise; the result is the planner's CSV.");
  AddBackendOptions(cmd, &args->backend, "sim", true);
  cmd->add_option("--only-stages", args->stages, "Stages to profile, a list (0,3) [default: all]")
      ->delimiter(',');
  // --stages is a count everywhere else: refused here with the option to use.
  cmd->add_option("--stages", args->stages_misused)->group("");
  cmd->add_option("--warmup", args->options.warmup_iterations,
                  "Unmeasured iterations at each frequency")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--iterations", args->options.measure_iterations,
                  "Measured iterations at each frequency")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--patience", args->options.patience,
                  "Stop once energy stayed above its minimum this many frequencies in a row, for "
                  "every instruction (0: sweep all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--outlier-threshold", args->options.outlier_threshold,
                  "Drop samples this many robust z-scores (median/MAD) from the median")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--frequencies", args->options.frequencies,
                  "Frequencies to sweep, MHz [default: all supported]")
      ->delimiter(',');
  cmd->add_option("--blocking-seconds", args->options.blocking_seconds,
                  "Length of one blocking-power measurement")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Write the profile CSV here [default: stdout]");
  cmd->add_flag("--json", args->json, "Print a JSON summary (use --out for the CSV)");
  cmd->callback([args, exit_code] { *exit_code = RunProfile(*args); });
}

}  // namespace perseus::cli
