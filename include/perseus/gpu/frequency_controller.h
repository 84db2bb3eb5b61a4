// FrequencyController: sets one GPU's SM clock from the training thread
// without ever waiting for the driver.
//
// Set(mhz) stores the request and wakes the controller's worker thread; it
// costs well under a microsecond (bench/gpu_benchmark). The worker applies the
// newest request (older ones not yet applied are dropped), skips a request
// equal to the clock it last applied, and records every request. Clocks are
// restored to the driver's default when the controller is destroyed (normal
// exit, exceptions unwinding the stack), at std::exit, on std::terminate, and on
// SIGINT/SIGTERM: a watcher thread resets every live controller's GPU, then the
// signal takes its usual effect (a handler installed before the first
// controller is called as before; after such a signal the controllers leave
// the clocks at their defaults). Behind gpud, a process killed with SIGKILL is
// covered too: gpud restores the clocks when its connection closes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/gpu/device.h"

namespace perseus::gpu {

struct ClockEvent {
  int requested_mhz = 0;   // 0: restore the default clock
  int applied_mhz = 0;     // what the GPU now runs at (0: default); -1 if the call failed
  bool skipped = false;    // equal to the clock already applied: no driver call
  double requested_s = 0;  // steady-clock seconds
  double applied_s = 0;
};

struct ControllerOptions {
  size_t history_limit = 1 << 16;  // oldest events are dropped beyond this
  bool reset_on_signals = true;    // install the SIGINT/SIGTERM watcher
  // While requests keep coming, the worker looks for a new one this often, so
  // Set never makes a system call (waking a sleeping thread costs microseconds);
  // a request waits at most this long before the driver call starts.
  int poll_interval_us = 500;
  // After this long without a request the worker sleeps until woken (the one
  // Set that wakes it pays for the wake-up).
  int idle_sleep_after_ms = 2000;
};

class FrequencyController {
 public:
  // `target` must outlive the controller.
  explicit FrequencyController(ClockTarget& target, ControllerOptions options = {});
  ~FrequencyController();
  FrequencyController(const FrequencyController&) = delete;
  FrequencyController& operator=(const FrequencyController&) = delete;

  // Requests an SM clock (MHz). Never blocks on the driver.
  void Set(int mhz) noexcept;
  // Requests the driver's default clock.
  void Reset() noexcept { Set(0); }
  // Blocks until every request posted so far is applied (not for the training
  // thread); returns the most recent failure, if any request failed.
  Status Flush();
  std::vector<ClockEvent> History() const;
  // Number of calls made to the GPU (requests minus dropped and skipped ones).
  uint64_t driver_calls() const { return driver_calls_.load(std::memory_order_relaxed); }
  ClockTarget& target() { return target_; }

  // Restores the default clock now and applies no further request. Used by the
  // exit paths; safe to call from any thread.
  void ResetForExit() noexcept;

 private:
  void Work();
  void Apply(int mhz, int64_t requested_ns);  // REQUIRES: apply_mutex_ held
  void Record(const ClockEvent& event);

  ClockTarget& target_;
  const ControllerOptions options_;

  // Posted by Set: the request and when it was made, then a bumped generation.
  std::atomic<int> requested_mhz_{0};
  std::atomic<int64_t> requested_ns_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> sleeping_{false};  // the worker is (about to be) in a blocking wait
  std::atomic<uint64_t> driver_calls_{0};

  std::mutex apply_mutex_;  // held while talking to the GPU
  int applied_mhz_ = 0;     // 0: default clocks (what we assume at start)
  bool touched_ = false;    // a clock was ever locked
  bool exiting_ = false;    // ResetForExit ran: apply nothing more
  Status last_error_;

  std::mutex flush_mutex_;
  std::condition_variable flushed_;
  uint32_t applied_generation_ = 0;

  mutable std::mutex history_mutex_;
  std::vector<ClockEvent> history_;

  std::thread worker_;
};

}  // namespace perseus::gpu
