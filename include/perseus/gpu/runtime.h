// One place where a training integration opens the GPU runtime from its
// configuration: the backend that reads the GPUs (nvml or sim), and where
// clock changes go — straight to the backend (needs root for nvml) or through
// gpud (no privilege needed; clocks restored even if the process is killed).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "perseus/gpu/device.h"
#include "perseus/gpu/gpud.h"
#include "perseus/gpu/sim_gpu.h"

namespace perseus::gpu {

struct RuntimeConfig {
  std::string backend = "nvml";  // nvml | sim
  std::string sim_profile;       // sim: the profile the simulated GPUs run
  SimGpuOptions sim;
  std::string gpud_socket;  // non-empty: clock changes go through gpud here

  // From PERSEUS_GPU_BACKEND, PERSEUS_SIM_PROFILE and PERSEUS_GPUD_SOCKET, over
  // the defaults above.
  static RuntimeConfig FromEnvironment();
};

// The backend `config` names (nvml, or sim on config.sim_profile).
Result<std::unique_ptr<Backend>> OpenBackend(const RuntimeConfig& config);

class GpuRuntime {
 public:
  static Result<std::unique_ptr<GpuRuntime>> Open(const RuntimeConfig& config);

  Backend& backend() { return *backend_; }
  // The GPU to measure.
  Result<Device*> device(int gpu) { return DeviceAt(*backend_, gpu); }
  // Where a FrequencyController for `gpu` sends its requests; owned by the runtime.
  Result<ClockTarget*> clocks(int gpu);
  bool through_gpud() const { return gpud_ != nullptr; }

 private:
  std::unique_ptr<Backend> backend_;
  std::shared_ptr<GpudClient> gpud_;
  std::vector<std::unique_ptr<RemoteGpu>> remote_;
};

}  // namespace perseus::gpu
