#include "cli/gpu_backend.h"

#include "cli/job.h"
#include "cli/options.h"

namespace perseus::cli {

void AddBackendOptions(CLI::App* command, BackendArgs* args, const std::string& default_backend,
                       bool noise_options) {
  args->backend = default_backend;
  command
      ->add_option("--backend", args->backend,
                   "nvml: NVIDIA GPUs through libnvidia-ml.so.1 (loaded at run time; "
                   "$PERSEUS_NVML_LIBRARY names another file); sim: one simulated GPU per stage "
                   "of --sim-profile")
      ->check(CLI::IsMember({"nvml", "sim"}))
      ->capture_default_str();
  command->add_option("--sim-profile", args->sim_profile,
                      "Profile CSV driving the sim backend [default: the shipped GPT-3 175B A100 "
                      "profile]");
  command
      ->add_option("--sim-blocking-power", args->sim.blocking_power_by_gpu_w,
                   "Power of a simulated GPU while it waits, in watts: one value for every GPU, "
                   "or one per GPU (stage) in stage order, comma-separated [default: 83.64]")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  if (!noise_options) return;
  AddPercentOption(command, "--noise", &args->sim.noise,
                   "Relative standard deviation of simulated times and energies", 50, 0.01);
  AddPercentOption(command, "--outlier-rate", &args->sim.outlier_rate,
                   "Chance that a simulated computation is an outlier (x3 time and energy)", 50,
                   0.01);
  command->add_option("--seed", args->sim.seed, "Seed of the simulated noise")
      ->capture_default_str();
}

Result<std::unique_ptr<gpu::Backend>> OpenCommandBackend(const BackendArgs& args) {
  BackendArgs config = args;
  if (config.sim_profile.empty()) {
    config.sim_profile = DataDir() + "/profiles/gpt3-175b+a100_sxm_bf16.csv";
  }
  return gpu::OpenBackend(config);
}

}  // namespace perseus::cli
