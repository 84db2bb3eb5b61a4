#include "perseus/gpu/device.h"

#include <chrono>

namespace perseus::gpu {

double Device::NowSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string Device::Describe() const {
  return "GPU " + std::to_string(index()) + " (" + name() + ")";
}

Result<Device*> DeviceAt(Backend& backend, int index) {
  if (index < 0 || index >= backend.device_count()) {
    return Status::InvalidInput("no GPU " + std::to_string(index) + ": the " + backend.name() +
                                " backend has " + std::to_string(backend.device_count()) + " (0.." +
                                std::to_string(backend.device_count() - 1) + ")");
  }
  return &backend.device(index);
}

}  // namespace perseus::gpu
