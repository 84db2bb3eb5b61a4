// Options shared by the GPU subcommands (gpu, gpud, profile): which backend to
// open and how.
#pragma once

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "perseus/gpu/device.h"
#include "perseus/gpu/runtime.h"

namespace perseus::cli {

// backend, sim_profile (empty: the shipped GPT-3 profile) and sim options;
// the commands take gpud sockets as options of their own.
using BackendArgs = gpu::RuntimeConfig;

// Registers --backend and --sim-profile (and, with noise, the sim's noise options).
void AddBackendOptions(CLI::App* command, BackendArgs* args, const std::string& default_backend,
                       bool noise_options);

// gpu::OpenBackend, with the shipped profile when --sim-profile is not given.
Result<std::unique_ptr<gpu::Backend>> OpenCommandBackend(const BackendArgs& args);

}  // namespace perseus::cli
