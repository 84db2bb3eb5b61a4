#include "perseus/gpu/runtime.h"

#include <cstdlib>

#include "perseus/gpu/nvml_backend.h"

namespace perseus::gpu {
namespace {

void FromEnv(const char* name, std::string* value) {
  const char* env = std::getenv(name);
  if (env != nullptr && *env != '\0') *value = env;
}

}  // namespace

RuntimeConfig RuntimeConfig::FromEnvironment() {
  RuntimeConfig config;
  FromEnv("PERSEUS_GPU_BACKEND", &config.backend);
  FromEnv("PERSEUS_SIM_PROFILE", &config.sim_profile);
  FromEnv("PERSEUS_GPUD_SOCKET", &config.gpud_socket);
  return config;
}

Result<std::unique_ptr<Backend>> OpenBackend(const RuntimeConfig& config) {
  if (config.backend == "sim") {
    if (config.sim_profile.empty()) {
      return Status::InvalidInput("the sim backend needs a profile (PERSEUS_SIM_PROFILE)");
    }
    auto sim = SimBackend::FromProfileCsv(config.sim_profile, config.sim);
    if (!sim.ok()) return sim.status();
    return std::unique_ptr<Backend>(std::move(sim).value());
  }
  if (config.backend == "nvml") return OpenNvmlBackend();
  return Status::InvalidInput("unknown GPU backend \"" + config.backend +
                              "\" (PERSEUS_GPU_BACKEND): nvml or sim");
}

Result<std::unique_ptr<GpuRuntime>> GpuRuntime::Open(const RuntimeConfig& config) {
  auto runtime = std::unique_ptr<GpuRuntime>(new GpuRuntime);
  auto backend = OpenBackend(config);
  if (!backend.ok()) return backend.status();
  runtime->backend_ = std::move(backend).value();
  if (!config.gpud_socket.empty()) {
    auto client = GpudClient::Connect(config.gpud_socket);
    if (!client.ok()) return client.status();
    runtime->gpud_ = std::move(client).value();
  }
  return runtime;
}

Result<ClockTarget*> GpuRuntime::clocks(int gpu) {
  auto device = DeviceAt(*backend_, gpu);
  if (!device.ok()) return device.status();
  if (gpud_ == nullptr) return static_cast<ClockTarget*>(*device);
  remote_.push_back(std::make_unique<RemoteGpu>(gpud_, gpu));
  return static_cast<ClockTarget*>(remote_.back().get());
}

}  // namespace perseus::gpu
