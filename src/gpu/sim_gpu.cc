#include "perseus/gpu/sim_gpu.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <thread>

namespace perseus::gpu {

using planner::Instruction;

SimGpu::SimGpu(int index, std::shared_ptr<const planner::Profile> profile, int stage,
               SimGpuOptions options)
    : index_(index),
      profile_(std::move(profile)),
      stage_(stage),
      options_(std::move(options)),
      power_w_(options_.blocking_power_w),
      rng_(options_.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(index)) {
  // Clocks every instruction of the stage was measured at.
  std::set<int> common;
  bool first = true;
  for (const auto& [key, rows] : profile_->measurements) {
    if (key.stage != stage_) continue;
    std::set<int> here;
    for (const auto& m : rows) here.insert(m.frequency_mhz);
    if (first) {
      common = std::move(here);
      first = false;
    } else {
      std::set<int> both;
      std::set_intersection(common.begin(), common.end(), here.begin(), here.end(),
                            std::inserter(both, both.end()));
      common = std::move(both);
    }
  }
  clocks_.assign(common.rbegin(), common.rend());
}

std::string SimGpu::uuid() const {
  char text[48];
  std::snprintf(text, sizeof text, "SIM-%08d-stage-%04d", index_, stage_);
  return text;
}

Result<std::vector<int>> SimGpu::SupportedSmClocks() {
  if (clocks_.empty()) {
    return Status::NotFound(
        "the profile has no frequency measured for every instruction of stage " +
        std::to_string(stage_));
  }
  return clocks_;
}

Result<int> SimGpu::CurrentSmClock() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (locked_mhz_ != 0) return locked_mhz_;
  if (clocks_.empty()) return Status::NotFound("simulated GPU has no clocks");
  return clocks_.front();
}

Result<uint64_t> SimGpu::EnergyMj() {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<uint64_t>(std::llround(energy_j_ * 1000.0));
}

Result<double> SimGpu::PowerW() {
  std::lock_guard<std::mutex> lock(mutex_);
  return power_w_;
}

Status SimGpu::LockSmClock(int mhz) {
  if (!std::binary_search(clocks_.rbegin(), clocks_.rend(), mhz)) {
    return Status::InvalidInput(std::to_string(mhz) + " MHz is not a supported SM clock of " +
                                Describe() + " (the profile has " +
                                (clocks_.empty() ? std::string("none")
                                                 : std::to_string(clocks_.back()) + ".." +
                                                       std::to_string(clocks_.front())) +
                                " MHz)");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  locked_mhz_ = mhz;
  return Status::Ok();
}

Status SimGpu::ResetSmClock() {
  std::lock_guard<std::mutex> lock(mutex_);
  locked_mhz_ = 0;
  return Status::Ok();
}

Status SimGpu::LockMemoryClockMax() {
  std::lock_guard<std::mutex> lock(mutex_);
  memory_locked_ = true;
  return Status::Ok();
}

Status SimGpu::ResetMemoryClock() {
  std::lock_guard<std::mutex> lock(mutex_);
  memory_locked_ = false;
  return Status::Ok();
}

double SimGpu::NowSeconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return now_s_;
}

bool SimGpu::sm_clock_locked() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return locked_mhz_ != 0;
}

bool SimGpu::memory_clock_locked() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return memory_locked_;
}

double SimGpu::Draw() {
  if (options_.noise <= 0) return 1.0;
  std::normal_distribution<double> normal(1.0, options_.noise);
  return std::max(0.05, normal(rng_));
}

Result<double> SimGpu::Run(Instruction instruction) {
  const std::vector<planner::Measurement>* rows = profile_->Find(stage_, instruction);
  if (rows == nullptr) {
    return Status::InvalidInput("the profile has no " + std::string(InstructionName(instruction)) +
                                " for stage " + std::to_string(stage_));
  }
  double time_s = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const int mhz = locked_mhz_ != 0 ? locked_mhz_ : clocks_.front();
    auto it = std::find_if(rows->begin(), rows->end(),
                           [mhz](const planner::Measurement& m) { return m.frequency_mhz == mhz; });
    if (it == rows->end()) {
      return Status::Internal("no " + std::string(InstructionName(instruction)) + " at " +
                              std::to_string(mhz) + " MHz");
    }
    // Energy follows time (same power), with noise of its own.
    double time_factor = Draw();
    double energy_factor = time_factor * Draw();
    if (options_.outlier_rate > 0) {
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      if (uniform(rng_) < options_.outlier_rate) {
        time_factor *= options_.outlier_factor;
        energy_factor *= options_.outlier_factor;
      }
    }
    time_s = it->time_s * time_factor;
    const double energy_j = it->energy_j * energy_factor;
    now_s_ += time_s;
    energy_j_ += energy_j;
    power_w_ = energy_j / time_s;
  }
  if (options_.real_time) std::this_thread::sleep_for(std::chrono::duration<double>(time_s));
  return time_s;
}

void SimGpu::Block(double seconds) {
  if (seconds <= 0) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    now_s_ += seconds;
    energy_j_ += options_.blocking_power_w * seconds;
    power_w_ = options_.blocking_power_w;
  }
  if (options_.real_time) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

std::vector<Instruction> SimRunner::instructions() const {
  std::vector<Instruction> out;
  for (Instruction i : {Instruction::kForward, Instruction::kBackward, Instruction::kBackwardInput,
                        Instruction::kBackwardWeight}) {
    if (gpu_.profile().Find(gpu_.stage(), i) != nullptr) out.push_back(i);
  }
  return out;
}

SimBackend::SimBackend(std::shared_ptr<const planner::Profile> profile,
                       const SimGpuOptions& options)
    : profile_(std::move(profile)) {
  for (int s = 0; s < profile_->num_stages; ++s) {
    SimGpuOptions own = options;
    const std::vector<double>& by_gpu = options.blocking_power_by_gpu_w;
    if (by_gpu.size() == 1) {
      own.blocking_power_w = by_gpu[0];
    } else if (static_cast<size_t>(s) < by_gpu.size()) {
      own.blocking_power_w = by_gpu[static_cast<size_t>(s)];
    }
    own.blocking_power_by_gpu_w.clear();
    gpus_.push_back(std::make_unique<SimGpu>(s, profile_, s, std::move(own)));
  }
}

Result<std::unique_ptr<SimBackend>> SimBackend::FromProfileCsv(const std::string& path,
                                                               const SimGpuOptions& options) {
  auto profile = planner::ReadProfileCsv(path);
  if (!profile.ok()) return profile.status();
  const size_t given = options.blocking_power_by_gpu_w.size();
  if (given > 1 && given != static_cast<size_t>(profile->num_stages)) {
    return Status::InvalidInput("blocking power: " + std::to_string(given) + " values for the " +
                                std::to_string(profile->num_stages) + " simulated GPUs of " + path +
                                " (one per stage; give one value for all)");
  }
  return std::make_unique<SimBackend>(
      std::make_shared<const planner::Profile>(std::move(profile).value()), options);
}

}  // namespace perseus::gpu
