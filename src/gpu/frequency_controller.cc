#include "perseus/gpu/frequency_controller.h"

#include <chrono>

#include "src/gpu/exit_guard.h"

namespace perseus::gpu {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Seconds(int64_t ns) { return static_cast<double>(ns) * 1e-9; }

}  // namespace

FrequencyController::FrequencyController(ClockTarget& target, ControllerOptions options)
    : target_(target), options_(options) {
  internal::RegisterController(this, options_.reset_on_signals);
  worker_ = std::thread([this] { Work(); });
}

FrequencyController::~FrequencyController() {
  internal::UnregisterController(this);
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_one();
  worker_.join();
  ResetForExit();
}

void FrequencyController::Set(int mhz) noexcept {
  requested_ns_.store(NowNs(), std::memory_order_relaxed);
  requested_mhz_.store(mhz, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  // Only a worker that went to sleep needs a (system-call) wake-up; a polling
  // one sees the new generation by itself. seq_cst on both sides: either this
  // load sees `sleeping_` or the worker's re-check sees the new generation.
  if (sleeping_.load(std::memory_order_seq_cst)) generation_.notify_one();
}

void FrequencyController::Work() {
  internal::BlockExitSignalsInThisThread();
  const auto poll = std::chrono::microseconds(options_.poll_interval_us);
  const int64_t idle_limit_ns = int64_t{options_.idle_sleep_after_ms} * 1000000;
  uint32_t seen = 0;
  int64_t last_request_ns = NowNs();
  for (;;) {
    uint32_t now_generation = generation_.load(std::memory_order_acquire);
    if (now_generation == seen) {
      if (NowNs() - last_request_ns < idle_limit_ns && options_.poll_interval_us > 0) {
        std::this_thread::sleep_for(poll);
        continue;
      }
      sleeping_.store(true, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == seen) {
        generation_.wait(seen, std::memory_order_acquire);
      }
      sleeping_.store(false, std::memory_order_relaxed);
      continue;
    }
    seen = now_generation;
    last_request_ns = NowNs();
    if (stop_.load(std::memory_order_acquire)) return;
    const int mhz = requested_mhz_.load(std::memory_order_relaxed);
    const int64_t requested_ns = requested_ns_.load(std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(apply_mutex_);
      Apply(mhz, requested_ns);
    }
    {
      std::lock_guard<std::mutex> lock(flush_mutex_);
      applied_generation_ = seen;
    }
    flushed_.notify_all();
  }
}

void FrequencyController::Apply(int mhz, int64_t requested_ns) {
  ClockEvent event;
  event.requested_mhz = mhz;
  event.requested_s = Seconds(requested_ns);
  if (exiting_) return;
  if (mhz == applied_mhz_) {
    event.applied_mhz = applied_mhz_;
    event.skipped = true;
  } else {
    Status status = mhz == 0 ? target_.ResetSmClock() : target_.LockSmClock(mhz);
    driver_calls_.fetch_add(1, std::memory_order_relaxed);
    if (status.ok()) {
      applied_mhz_ = mhz;
      touched_ = touched_ || mhz != 0;
      event.applied_mhz = mhz;
    } else {
      event.applied_mhz = -1;
      last_error_ = std::move(status);
      // The GPU's state is unknown now: make the next request a real call.
      applied_mhz_ = -1;
      touched_ = true;
    }
  }
  event.applied_s = Seconds(NowNs());
  Record(event);
}

void FrequencyController::Record(const ClockEvent& event) {
  std::lock_guard<std::mutex> lock(history_mutex_);
  if (history_.size() >= options_.history_limit && !history_.empty()) {
    history_.erase(history_.begin(), history_.begin() + static_cast<long>(history_.size() / 2));
  }
  history_.push_back(event);
}

Status FrequencyController::Flush() {
  const uint32_t target_generation = generation_.load(std::memory_order_acquire);
  {
    std::unique_lock<std::mutex> lock(flush_mutex_);
    flushed_.wait(lock, [&] {
      return static_cast<int32_t>(applied_generation_ - target_generation) >= 0 ||
             stop_.load(std::memory_order_acquire);
    });
  }
  std::lock_guard<std::mutex> lock(apply_mutex_);
  Status error = std::move(last_error_);
  last_error_ = Status::Ok();
  return error;
}

std::vector<ClockEvent> FrequencyController::History() const {
  std::lock_guard<std::mutex> lock(history_mutex_);
  return history_;
}

void FrequencyController::ResetForExit() noexcept {
  std::lock_guard<std::mutex> lock(apply_mutex_);
  const bool needed = touched_ && !exiting_;
  exiting_ = true;
  if (!needed) return;
  ClockEvent event;
  event.requested_s = Seconds(NowNs());
  Status status = target_.ResetSmClock();
  driver_calls_.fetch_add(1, std::memory_order_relaxed);
  event.applied_mhz = status.ok() ? 0 : -1;
  if (status.ok()) applied_mhz_ = 0;
  event.applied_s = Seconds(NowNs());
  Record(event);
}

}  // namespace perseus::gpu
