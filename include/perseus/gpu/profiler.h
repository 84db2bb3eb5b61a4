// The online profiler: measures the planner's input (time and energy of every
// forward and backward at every SM frequency) during real work.
//
// FrequencySweep is the decision logic, driven by whoever runs the work (a
// training loop announces samples and iteration ends); ProfileStage drives it
// with an InstructionRunner callback. The sweep goes from the highest
// frequency down; at each it runs `warmup_iterations` unmeasured iterations,
// then `measure_iterations` measured ones; samples more than
// `outlier_threshold` robust z-scores (median/MAD) from the median are
// dropped; it stops early once, for every instruction, the energy has stayed
// above its lowest value so far for `patience` frequencies in a row (lower
// frequencies only cost more energy and time from there on).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/gpu/device.h"
#include "perseus/planner/profile.h"

namespace perseus::gpu {

struct ProfilerOptions {
  int warmup_iterations = 1;
  int measure_iterations = 5;
  int patience = 5;
  double outlier_threshold = 3.5;
  std::vector<int> frequencies;   // to sweep; empty: the GPU's supported clocks
  double blocking_seconds = 0.5;  // one blocking-power measurement ...
  int blocking_samples = 3;       // ... taken this many times (median kept)
};

struct Sample {
  double time_s = 0;
  double energy_j = 0;
};

// Time and energy of one stretch of GPU work. For a real GPU, End must be
// called after the work has finished on the device (synchronise first).
class MeasurementWindow {
 public:
  explicit MeasurementWindow(Device& device) : device_(device) {}
  Status Begin();
  Result<Sample> End();

 private:
  Device& device_;
  double start_s_ = 0;
  uint64_t start_mj_ = 0;
  bool open_ = false;
};

struct SweepRow {
  planner::Instruction instruction = planner::Instruction::kForward;
  int frequency_mhz = 0;
  double time_s = 0;
  double energy_j = 0;
  int samples_kept = 0;
  int samples_dropped = 0;
};

class FrequencySweep {
 public:
  // `frequencies` in the order to sweep (highest first). Refuses (kInvalidInput)
  // no frequencies, a frequency <= 0 or repeated, no instructions or one
  // repeated, warm-up iterations or patience < 0, measure iterations < 1 and an
  // outlier threshold that is not > 0. The way to make a sweep.
  static Result<FrequencySweep> Make(std::vector<int> frequencies,
                                     std::vector<planner::Instruction> instructions,
                                     ProfilerOptions options);
  // The reason Make would refuse these arguments; Ok when it would not.
  static Status Validate(const std::vector<int>& frequencies,
                         const std::vector<planner::Instruction>& instructions,
                         const ProfilerOptions& options);
  // Direct construction never fails either: with arguments Make refuses, the
  // sweep is done() from the start, frequency() is 0, progress() 1, no rows,
  // and Record and EndIteration return Make's kInvalidInput (see status()).
  FrequencySweep(std::vector<int> frequencies, std::vector<planner::Instruction> instructions,
                 ProfilerOptions options);

  // Ok, or why the arguments were refused (then the sweep is done and empty).
  const Status& status() const { return status_; }
  bool done() const { return done_; }
  // The clock the next iteration runs at; 0 once done().
  int frequency() const { return done_ ? 0 : frequencies_[index_]; }
  // False during warm-up iterations (samples are ignored then).
  bool measuring() const { return iteration_ >= options_.warmup_iterations; }
  // One computation's measurement (any number per iteration).
  Status Record(planner::Instruction instruction, const Sample& sample);
  // Closes an iteration; after the last measured one of a frequency, turns its
  // samples into rows and applies the stopping rule.
  Status EndIteration();

  const std::vector<SweepRow>& rows() const { return rows_; }
  // The lowest frequency measured, when the sweep stopped before the end; else 0.
  int stopped_early_at() const { return stopped_early_at_; }
  // Frequencies whose measurements are complete.
  int frequencies_done() const { return static_cast<int>(index_); }
  double progress() const;

 private:
  Status FinishFrequency();

  std::vector<int> frequencies_;
  std::vector<planner::Instruction> instructions_;
  ProfilerOptions options_;
  Status status_;
  size_t index_ = 0;  // the frequency being measured; also how many are done
  int iteration_ = 0;
  bool done_ = false;
  int stopped_early_at_ = 0;
  std::vector<std::vector<Sample>> samples_;  // per instruction, this frequency
  std::vector<double> min_energy_;            // per instruction
  std::vector<int> above_min_;                // per instruction: frequencies in a row
  std::vector<SweepRow> rows_;
};

// Runs a stage's computations on the GPU being profiled.
class InstructionRunner {
 public:
  virtual ~InstructionRunner() = default;
  virtual std::vector<planner::Instruction> instructions() const = 0;
  // Runs one computation and returns once the GPU has finished it.
  virtual Status Run(planner::Instruction instruction) = 0;
  // Keeps the GPU waiting, as it does on communication, for about `seconds`.
  virtual Status Block(double seconds) = 0;
};

struct StageProfile {
  int stage = 0;
  std::vector<SweepRow> rows;
  double blocking_power_w = 0;
  int stopped_early_at = 0;  // see FrequencySweep
  int frequencies_swept = 0;
  int frequencies_supported = 0;
};

// Profiles one stage: `clocks` sets the frequencies, `meter` measures, `runner`
// works. Restores the default clock before returning (also on failure).
Result<StageProfile> ProfileStage(Device& meter, ClockTarget& clocks, InstructionRunner& runner,
                                  int stage, const ProfilerOptions& options,
                                  const std::function<void(double)>& progress = {});

// The planner's CSV (stage,instruction,frequency,time,energy), stages in order,
// frequencies highest first.
std::string ProfileCsv(const std::vector<StageProfile>& stages);

// Mean of the samples within `threshold` robust z-scores of the median (in
// time and in energy); `dropped` gets the number left out.
Sample RobustMean(const std::vector<Sample>& samples, double threshold, int* dropped);

}  // namespace perseus::gpu
