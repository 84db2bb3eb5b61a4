#include "cli/job.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/options.h"
#include "perseus/client/client.h"
#include "perseus/planner/profile.h"
#include "perseus/schedules/schedule.h"

namespace perseus::cli {

void AddScheduleOptions(CLI::App* command, job::JobSpec* spec) {
  command
      ->add_option("--schedule", spec->schedule, "Pipeline schedule: " + schedules::ScheduleNames())
      ->capture_default_str();
  command->add_option("--schedule-file", spec->schedule_file,
                      "A schedule exported by torch.distributed.pipelining as CSV (one row per "
                      "rank, actions such as 0F3, 1B2, 2I0, 2W0); gives stages and microbatches");
  command
      ->add_option("--stages", spec->stages,
                   "Pipeline stages S, a count (GPUs per pipeline, one per tensor-parallel group)")
      ->check(CLI::Range(1, 1 << 20));
  command->add_option("--microbatches", spec->microbatches, "Microbatches per iteration M")
      ->check(CLI::Range(1, 1 << 20));
  command
      ->add_option("--virtual-stages", spec->virtual_stages,
                   "Model chunks per GPU V (interleaved-1f1b), 1..128")
      ->check(CLI::Range(1, job::WorkLimits{}.max_virtual_stages))
      ->capture_default_str();
}

void AddJobOptions(CLI::App* command, job::JobSpec* spec) {
  command
      ->add_option("--profile", spec->profile_path,
                   "Profile CSV (stage,instruction,frequency,time,energy[,tp_rank])")
      ->required();
  AddScheduleOptions(command, spec);
  command->add_option("--tp", spec->tp, "Tensor-parallel degree N (GPUs per stage), 1..1024")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  command->add_option("--dp", spec->dp, "Data-parallel degree D (pipelines), 1..1000000")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  command
      ->add_option("--blocking-power", spec->blocking_power_w,
                   "Watts one GPU draws while waiting (A100: 83.64, A40: 70.38); a stage of --tp "
                   "GPUs draws --tp times this [default: the one perseus profile measured beside "
                   "the profile (PROFILE.meta.json), else 0 with a warning]")
      ->check(Within(0, job::kMaxBlockingPowerW))
      ->each([spec](const std::string&) { spec->blocking_power_source = "given"; });
  command
      ->add_option("--unit-time", spec->unit_time_s,
                   "Time quantum of the solver, seconds (default: the fastest computation / "
                   "500, rounded down to 1, 2 or 5 x 10^k; an expert option)")
      ->check(Within(0, 1));
  command->add_option("--cost-model", spec->cost_model, "exponential | convex")
      ->capture_default_str();
  command->add_option("--time-scale", spec->time_scale, "Multiply every profiled time")
      ->check(Above(0, 1e15))
      ->capture_default_str();
  command->add_option("--energy-scale", spec->energy_scale, "Multiply every profiled energy")
      ->check(Above(0, 1e15))
      ->capture_default_str();
}

Result<PlannedJob> PlanJob(const job::JobSpec& spec, const planner::ProgressFn& progress) {
  auto prepared = job::PrepareJob(spec);
  if (!prepared.ok()) return prepared.status();
  auto frontier = job::SolveJob(*prepared, progress);
  if (!frontier.ok()) return frontier.status();
  return PlannedJob{std::move(prepared).value(), std::move(frontier).value()};
}

void PrintNotes(const job::PreparedJob& job) {
  for (const std::string& note : job.notes)
    std::fprintf(stderr, "perseus: note: %s\n", note.c_str());
  for (const std::string& warning : job.warnings)
    std::fprintf(stderr, "perseus: warning: %s\n", warning.c_str());
}

job::JobSpec DemoJobSpec() {
  job::JobSpec spec;
  spec.profile_path = DataDir() + "/profiles/gpt3-175b+a100_sxm_bf16.csv";
  spec.stages = 8;
  spec.microbatches = 12;
  // The paper's emulation: time x10 and energy x80 with 8 x 83.64 W per
  // stage, which is exactly a tensor-parallel degree of 8 with energy x10.
  spec.tp = 8;
  spec.blocking_power_w = 83.64;
  spec.blocking_power_source = "given";
  spec.time_scale = 10;
  spec.energy_scale = 10;
  return spec;
}

planner::ProgressFn TerminalProgress(const std::string& what) {
  if (!isatty(STDERR_FILENO)) return {};
  return [what](double fraction) {
    std::fprintf(stderr, "\r%s: %3.0f%%%s", what.c_str(), fraction * 100,
                 fraction >= 1.0 ? "\r\033[K" : "");
    std::fflush(stderr);
  };
}

std::string DataDir() {
  if (const char* env = std::getenv("PERSEUS_DATA_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return PERSEUS_DATA_DIR;
}

void LogLine(const char* who, const std::string& line) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::fprintf(stderr, "%s %s: %s\n", stamp, who, line.c_str());
  std::fflush(stderr);
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "perseus: error: %s\n", status.message().c_str());
  switch (status.code()) {
    case StatusCode::kInvalidInput:
    case StatusCode::kNotFound:
      return 2;
    default:
      return 1;
  }
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot read the token file");
  std::stringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
    token.pop_back();
  }
  if (token.empty()) return Status::InvalidInput(path + ":1: the token file is empty");
  // Sent as an HTTP header: a CR/LF (or any control character) would add
  // headers of its own.
  if (Status s = client::CheckToken(token); !s.ok()) {
    return Status::InvalidInput(path + ": " + s.message());
  }
  return token;
}

}  // namespace perseus::cli
