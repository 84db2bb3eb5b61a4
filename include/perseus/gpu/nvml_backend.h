// The `nvml` backend: NVIDIA GPUs through libnvidia-ml.so.1, loaded at run
// time with dlopen (nothing NVIDIA is needed to build Perseus).
#pragma once

#include <memory>
#include <string>

#include "perseus/gpu/device.h"

namespace perseus::gpu {

struct NvmlOptions {
  // Library to load. Empty: $PERSEUS_NVML_LIBRARY if set, else "libnvidia-ml.so.1"
  // found through the loader's search path (LD_LIBRARY_PATH, ld.so.cache).
  std::string library;
  // Where a GPU has no energy counter, energy is integrated from power
  // readings taken this often by a background thread.
  double power_sample_interval_s = 0.01;
};

// Loads the library, initialises NVML and opens every GPU. Errors, each one
// line saying what to do: the library is missing (kUnavailable), the driver is
// not loaded (kUnavailable), no GPU (kNotFound), no permission to the device
// files (kPermissionDenied), any other NVML error (kInternal, with the NVML
// function and nvmlErrorString).
Result<std::unique_ptr<Backend>> OpenNvmlBackend(const NvmlOptions& options = {});

}  // namespace perseus::gpu
