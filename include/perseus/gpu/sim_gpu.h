// The `sim` backend: GPUs simulated from a profile. GPU i runs pipeline stage
// i's computations: each takes the profiled time and energy at the current SM
// clock, optionally with seeded noise and outliers; waiting draws the blocking
// power. Time is simulated (deterministic), unless real_time asks the GPU to
// also sleep for it, as a stand-in for a real GPU in training examples.
#pragma once

#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "perseus/gpu/device.h"
#include "perseus/gpu/profiler.h"
#include "perseus/planner/profile.h"

namespace perseus::gpu {

struct SimGpuOptions {
  double blocking_power_w = 83.64;  // per GPU while waiting (the paper's A100 figure)
  // SimBackend: if not empty, GPU i waits at blocking_power_by_gpu_w[i] (one
  // entry per GPU), or every GPU at its only entry, instead.
  std::vector<double> blocking_power_by_gpu_w;
  double noise = 0;           // relative standard deviation of time and energy
  double outlier_rate = 0;    // chance that a computation is an outlier ...
  double outlier_factor = 3;  // ... taking this many times its time and energy
  uint64_t seed = 1;
  bool real_time = false;  // also sleep for each computation's and wait's time
  std::string name = "Perseus simulated GPU";
};

class SimGpu final : public Device {
 public:
  // REQUIRES: profile has rows for `stage`.
  SimGpu(int index, std::shared_ptr<const planner::Profile> profile, int stage,
         SimGpuOptions options);

  int index() const override { return index_; }
  std::string name() const override { return options_.name; }
  std::string uuid() const override;
  // The frequencies the profile has for every instruction of the stage.
  Result<std::vector<int>> SupportedSmClocks() override;
  // The locked clock, or the highest supported clock when unlocked.
  Result<int> CurrentSmClock() override;
  Result<uint64_t> EnergyMj() override;
  Result<double> PowerW() override;
  // Fails (kInvalidInput) for a clock the profile does not have.
  Status LockSmClock(int mhz) override;
  Status ResetSmClock() override;
  Status LockMemoryClockMax() override;
  Status ResetMemoryClock() override;
  double NowSeconds() const override;

  int stage() const { return stage_; }
  const planner::Profile& profile() const { return *profile_; }
  bool sm_clock_locked() const;
  bool memory_clock_locked() const;
  // Runs one computation at the current clock; returns its simulated time (s).
  Result<double> Run(planner::Instruction instruction);
  // Waits (blocked on communication) for `seconds`.
  void Block(double seconds);

 private:
  double Draw();  // one noise factor around 1; REQUIRES: mutex_ held

  const int index_;
  const std::shared_ptr<const planner::Profile> profile_;
  const int stage_;
  const SimGpuOptions options_;
  std::vector<int> clocks_;  // highest first

  mutable std::mutex mutex_;
  int locked_mhz_ = 0;  // 0: not locked
  bool memory_locked_ = false;
  double now_s_ = 0;
  double energy_j_ = 0;
  double power_w_ = 0;
  std::mt19937_64 rng_;
};

// Runs a simulated GPU's stage computations, for the profiler.
class SimRunner final : public InstructionRunner {
 public:
  explicit SimRunner(SimGpu& gpu) : gpu_(gpu) {}
  // The instructions the profile has for the GPU's stage.
  std::vector<planner::Instruction> instructions() const override;
  Status Run(planner::Instruction instruction) override {
    auto time = gpu_.Run(instruction);
    return time.ok() ? Status::Ok() : time.status();
  }
  Status Block(double seconds) override {
    gpu_.Block(seconds);
    return Status::Ok();
  }

 private:
  SimGpu& gpu_;
};

class SimBackend final : public Backend {
 public:
  // One GPU per stage of the profile. REQUIRES: options.blocking_power_by_gpu_w
  // has no entry, one, or one per stage (FromProfileCsv checks).
  SimBackend(std::shared_ptr<const planner::Profile> profile, const SimGpuOptions& options);
  static Result<std::unique_ptr<SimBackend>> FromProfileCsv(const std::string& path,
                                                            const SimGpuOptions& options);

  std::string name() const override { return "sim"; }
  int device_count() const override { return static_cast<int>(gpus_.size()); }
  Device& device(int index) override { return *gpus_[static_cast<size_t>(index)]; }
  std::string version() const override { return "simulated from " + profile_->source; }
  SimGpu& sim_device(int index) { return *gpus_[static_cast<size_t>(index)]; }
  const planner::Profile& profile() const { return *profile_; }

 private:
  std::shared_ptr<const planner::Profile> profile_;
  std::vector<std::unique_ptr<SimGpu>> gpus_;
};

}  // namespace perseus::gpu
