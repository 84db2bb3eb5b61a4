// Options shared by the GPU subcommands (gpu, gpud, profile): which backend to
// open and how.
#pragma once

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "perseus/gpu/device.h"
#include "perseus/gpu/sim_gpu.h"

namespace perseus::cli {

struct BackendArgs {
  std::string backend = "nvml";  // nvml | sim
  std::string sim_profile;       // empty: the shipped GPT-3 profile
  gpu::SimGpuOptions sim;
};

// Registers --backend and --sim-profile (and, with noise, the sim's noise options).
void AddBackendOptions(CLI::App* command, BackendArgs* args, const std::string& default_backend,
                       bool noise_options);

Result<std::unique_ptr<gpu::Backend>> OpenBackend(const BackendArgs& args);

}  // namespace perseus::cli
