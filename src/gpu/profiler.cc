#include "perseus/gpu/profiler.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "perseus/common/median.h"

namespace perseus::gpu {

using planner::Instruction;

Status MeasurementWindow::Begin() {
  auto mj = device_.EnergyMj();
  if (!mj.ok()) return mj.status();
  start_mj_ = *mj;
  start_s_ = device_.NowSeconds();
  open_ = true;
  return Status::Ok();
}

Result<Sample> MeasurementWindow::End() {
  if (!open_) return Status::Internal("MeasurementWindow::End without Begin");
  open_ = false;
  const double end_s = device_.NowSeconds();
  auto mj = device_.EnergyMj();
  if (!mj.ok()) return mj.status();
  Sample sample;
  sample.time_s = end_s - start_s_;
  sample.energy_j = static_cast<double>(*mj - std::min(*mj, start_mj_)) / 1000.0;
  return sample;
}

namespace {

// Which samples are within `threshold` robust z-scores (0.6745 |x - median| / MAD).
std::vector<bool> Inliers(const std::vector<double>& values, double threshold) {
  const double median = Median(values);
  std::vector<double> deviations;
  for (double v : values) deviations.push_back(std::fabs(v - median));
  const double mad = Median(deviations);
  std::vector<bool> keep(values.size(), true);
  // With MAD 0 (most samples equal) only samples equal to the median (within
  // rounding) are kept.
  const double floor = 1e-9 * std::fabs(median);
  for (size_t i = 0; i < values.size(); ++i) {
    keep[i] = 0.6745 * deviations[i] <= threshold * mad + floor;
  }
  return keep;
}

std::string Number(double v) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof text, v);
  return std::string(text, end);
}

}  // namespace

Sample RobustMean(const std::vector<Sample>& samples, double threshold, int* dropped) {
  *dropped = 0;
  if (samples.empty()) return {};
  std::vector<double> times, energies;
  for (const Sample& s : samples) {
    times.push_back(s.time_s);
    energies.push_back(s.energy_j);
  }
  const std::vector<bool> time_ok = Inliers(times, threshold);
  const std::vector<bool> energy_ok = Inliers(energies, threshold);
  Sample sum;
  int kept = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!time_ok[i] || !energy_ok[i]) continue;
    sum.time_s += samples[i].time_s;
    sum.energy_j += samples[i].energy_j;
    ++kept;
  }
  if (kept == 0) {  // cannot happen (the median sample is kept), but stay defined
    return samples[samples.size() / 2];
  }
  *dropped = static_cast<int>(samples.size()) - kept;
  return {sum.time_s / kept, sum.energy_j / kept};
}

Status FrequencySweep::Validate(const std::vector<int>& frequencies,
                                const std::vector<Instruction>& instructions,
                                const ProfilerOptions& options) {
  if (frequencies.empty()) return Status::InvalidInput("a frequency sweep needs frequencies");
  for (int f : frequencies) {
    if (f <= 0) {
      return Status::InvalidInput("a frequency sweep's frequencies must be > 0, got " +
                                  std::to_string(f) + " MHz");
    }
  }
  std::vector<int> sorted = frequencies;
  std::sort(sorted.begin(), sorted.end());
  if (auto it = std::adjacent_find(sorted.begin(), sorted.end()); it != sorted.end()) {
    return Status::InvalidInput("a frequency sweep names " + std::to_string(*it) +
                                " MHz more than once");
  }
  if (instructions.empty()) return Status::InvalidInput("a frequency sweep needs instructions");
  for (size_t i = 0; i < instructions.size(); ++i) {
    if (std::find(instructions.begin(), instructions.begin() + static_cast<long>(i),
                  instructions[i]) != instructions.begin() + static_cast<long>(i)) {
      return Status::InvalidInput("a frequency sweep names " +
                                  std::string(InstructionName(instructions[i])) +
                                  " more than once");
    }
  }
  if (options.measure_iterations < 1) {
    return Status::InvalidInput("measure iterations must be at least 1, got " +
                                std::to_string(options.measure_iterations));
  }
  if (options.warmup_iterations < 0 || options.patience < 0) {
    return Status::InvalidInput("warm-up iterations and patience must be >= 0, got " +
                                std::to_string(options.warmup_iterations) + " and " +
                                std::to_string(options.patience));
  }
  if (!(options.outlier_threshold > 0)) {
    return Status::InvalidInput("the outlier threshold must be > 0, got " +
                                Number(options.outlier_threshold));
  }
  return Status::Ok();
}

Result<FrequencySweep> FrequencySweep::Make(std::vector<int> frequencies,
                                            std::vector<Instruction> instructions,
                                            ProfilerOptions options) {
  if (Status s = Validate(frequencies, instructions, options); !s.ok()) return s;
  return FrequencySweep(std::move(frequencies), std::move(instructions), std::move(options));
}

FrequencySweep::FrequencySweep(std::vector<int> frequencies, std::vector<Instruction> instructions,
                               ProfilerOptions options)
    : status_(Validate(frequencies, instructions, options)) {
  if (!status_.ok()) {  // done and empty: every accessor stays defined
    done_ = true;
    return;
  }
  frequencies_ = std::move(frequencies);
  instructions_ = std::move(instructions);
  options_ = std::move(options);
  samples_.resize(instructions_.size());
  min_energy_.assign(instructions_.size(), std::numeric_limits<double>::infinity());
  above_min_.assign(instructions_.size(), 0);
}

Status FrequencySweep::Record(Instruction instruction, const Sample& sample) {
  if (!status_.ok()) return status_;
  if (done_) return Status::InvalidInput("the frequency sweep is over");
  auto it = std::find(instructions_.begin(), instructions_.end(), instruction);
  if (it == instructions_.end()) {
    return Status::InvalidInput("the sweep does not measure " +
                                std::string(InstructionName(instruction)));
  }
  if (!(sample.time_s > 0) || !(sample.energy_j >= 0) || !std::isfinite(sample.time_s) ||
      !std::isfinite(sample.energy_j)) {
    return Status::InvalidInput("a sample needs time > 0 and energy >= 0, got " +
                                Number(sample.time_s) + " s, " + Number(sample.energy_j) + " J");
  }
  if (measuring()) samples_[static_cast<size_t>(it - instructions_.begin())].push_back(sample);
  return Status::Ok();
}

Status FrequencySweep::EndIteration() {
  if (!status_.ok()) return status_;
  if (done_) return Status::InvalidInput("the frequency sweep is over");
  ++iteration_;
  if (iteration_ < options_.warmup_iterations + options_.measure_iterations) return Status::Ok();
  return FinishFrequency();
}

Status FrequencySweep::FinishFrequency() {
  const int mhz = frequencies_[index_];
  bool all_rising = true;
  for (size_t i = 0; i < instructions_.size(); ++i) {
    if (samples_[i].empty()) {
      return Status::InvalidInput("no " + std::string(InstructionName(instructions_[i])) +
                                  " was measured at " + std::to_string(mhz) + " MHz");
    }
    SweepRow row;
    row.instruction = instructions_[i];
    row.frequency_mhz = mhz;
    const Sample mean = RobustMean(samples_[i], options_.outlier_threshold, &row.samples_dropped);
    row.samples_kept = static_cast<int>(samples_[i].size()) - row.samples_dropped;
    row.time_s = mean.time_s;
    row.energy_j = mean.energy_j;
    rows_.push_back(row);
    samples_[i].clear();
    if (mean.energy_j < min_energy_[i]) {
      min_energy_[i] = mean.energy_j;
      above_min_[i] = 0;
    } else {
      ++above_min_[i];
    }
    all_rising = all_rising && above_min_[i] >= options_.patience;
  }
  iteration_ = 0;
  ++index_;
  if (options_.patience > 0 && all_rising && index_ < frequencies_.size()) {
    stopped_early_at_ = mhz;
    done_ = true;
  } else if (index_ == frequencies_.size()) {
    done_ = true;
  }
  return Status::Ok();
}

double FrequencySweep::progress() const {
  if (done_) return 1.0;
  const double per = options_.warmup_iterations + options_.measure_iterations;
  return (static_cast<double>(index_) + iteration_ / per) /
         static_cast<double>(frequencies_.size());
}

Result<StageProfile> ProfileStage(Device& meter, ClockTarget& clocks, InstructionRunner& runner,
                                  int stage, const ProfilerOptions& options,
                                  const std::function<void(double)>& progress) {
  if (options.measure_iterations < 1) {
    return Status::InvalidInput("measure iterations must be at least 1");
  }
  if (options.warmup_iterations < 0 || options.patience < 0 || options.blocking_samples < 0 ||
      options.blocking_seconds < 0 || !(options.outlier_threshold > 0)) {
    return Status::InvalidInput(
        "warm-up iterations, patience, blocking samples and seconds must be >= 0, the outlier "
        "threshold > 0");
  }
  std::vector<int> frequencies = options.frequencies;
  auto supported = meter.SupportedSmClocks();
  if (!supported.ok()) return supported.status();
  if (frequencies.empty()) frequencies = *supported;
  std::sort(frequencies.rbegin(), frequencies.rend());
  for (int f : frequencies) {
    if (std::find(supported->begin(), supported->end(), f) == supported->end()) {
      return Status::InvalidInput(std::to_string(f) + " MHz is not a supported clock of " +
                                  meter.Describe());
    }
  }
  StageProfile out;
  out.stage = stage;
  out.frequencies_supported = static_cast<int>(supported->size());
  const std::vector<Instruction> instructions = runner.instructions();
  auto made = FrequencySweep::Make(frequencies, instructions, options);
  if (!made.ok()) return made.status();
  FrequencySweep& sweep = *made;
  MeasurementWindow window(meter);
  auto sweep_all = [&]() -> Status {
    while (!sweep.done()) {
      if (Status s = clocks.LockSmClock(sweep.frequency()); !s.ok()) return s;
      for (Instruction instruction : instructions) {
        if (Status s = window.Begin(); !s.ok()) return s;
        if (Status s = runner.Run(instruction); !s.ok()) return s;
        auto sample = window.End();
        if (!sample.ok()) return sample.status();
        if (Status s = sweep.Record(instruction, *sample); !s.ok()) return s;
      }
      if (Status s = sweep.EndIteration(); !s.ok()) return s;
      if (progress) progress(sweep.progress());
    }
    return Status::Ok();
  };
  Status swept = sweep_all();
  Status reset = clocks.ResetSmClock();
  if (!swept.ok()) return swept;
  if (!reset.ok()) return reset;
  out.rows = sweep.rows();
  out.stopped_early_at = sweep.stopped_early_at();
  out.frequencies_swept = sweep.frequencies_done();

  // Blocking power, at the default clock (as while waiting on communication).
  std::vector<double> powers;
  for (int i = 0; i < options.blocking_samples; ++i) {
    if (Status s = window.Begin(); !s.ok()) return s;
    if (Status s = runner.Block(options.blocking_seconds); !s.ok()) return s;
    auto sample = window.End();
    if (!sample.ok()) return sample.status();
    if (sample->time_s > 0) powers.push_back(sample->energy_j / sample->time_s);
  }
  if (!powers.empty()) out.blocking_power_w = Median(powers);
  return out;
}

std::string ProfileCsv(const std::vector<StageProfile>& stages) {
  std::string csv = "stage,instruction,frequency,time,energy\n";
  for (const StageProfile& stage : stages) {
    for (const SweepRow& row : stage.rows) {
      csv += std::to_string(stage.stage) + "," + std::string(InstructionName(row.instruction)) +
             "," + std::to_string(row.frequency_mhz) + "," + Number(row.time_s) + "," +
             Number(row.energy_j) + "\n";
    }
  }
  return csv;
}

}  // namespace perseus::gpu
