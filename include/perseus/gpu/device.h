// The GPU runtime's view of a GPU: what the frequency controller, the daemon
// (gpud) and the online profiler need, and nothing else. Backends implement it:
// `nvml` (a real NVIDIA GPU through libnvidia-ml, loaded at run time) and `sim`
// (a GPU simulated from a profile, with a deterministic clock).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "perseus/common/status.h"

namespace perseus::gpu {

// What a frequency controller drives: a GPU whose SM clock can be locked and
// restored. A Device is one; so is a GPU held through gpud (RemoteGpu).
class ClockTarget {
 public:
  virtual ~ClockTarget() = default;
  // Locks the SM clock to `mhz` (min = max = mhz).
  virtual Status LockSmClock(int mhz) = 0;
  // Restores the driver's default SM clock behaviour.
  virtual Status ResetSmClock() = 0;
  // "GPU 0 (NVIDIA A100-SXM4-80GB)", for messages.
  virtual std::string Describe() const = 0;
};

class Device : public ClockTarget {
 public:
  virtual int index() const = 0;
  virtual std::string name() const = 0;
  virtual std::string uuid() const = 0;
  // PCI bus id as NVML writes it ("00000000:07:00.0"); empty where there is
  // none (simulated GPUs, or an NVML without nvmlDeviceGetPciInfo_v3).
  virtual std::string pci_bus_id() const { return ""; }
  // Supported SM clocks at the highest memory clock, in MHz, highest first.
  virtual Result<std::vector<int>> SupportedSmClocks() = 0;
  virtual Result<int> CurrentSmClock() = 0;
  // Energy used since some fixed point in the past, in millijoules; only
  // differences are meaningful.
  virtual Result<uint64_t> EnergyMj() = 0;
  virtual Result<double> PowerW() = 0;
  // Locks the memory clock to its highest supported value / restores it.
  virtual Status LockMemoryClockMax() = 0;
  virtual Status ResetMemoryClock() = 0;
  // The clock measurements are taken against, in seconds: a steady wall clock
  // for real GPUs, simulated time for the sim backend.
  virtual double NowSeconds() const;

  std::string Describe() const override;
};

// All GPUs one backend sees.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "nvml" or "sim"
  virtual int device_count() const = 0;
  // REQUIRES: 0 <= index < device_count()
  virtual Device& device(int index) = 0;
  // Driver / library version line for `gpu info`.
  virtual std::string version() const = 0;
};

// Checks that `index` names a device of `backend`.
Result<Device*> DeviceAt(Backend& backend, int index);

}  // namespace perseus::gpu
