// The client library a training process uses to talk to the coordinator.
//
// Client(options) registers the rank and keeps its plan fresh on a background
// thread: at every iteration boundary (EndIteration) and every poll interval it
// asks for the plan with If-None-Match, so an unchanged plan costs a 304. The
// training thread never waits on the network: FrequencyFor/Apply read the
// cached plan. If the server is unreachable the client keeps its last plan (or
// the highest frequency while it has none), retries with exponential backoff,
// and logs once when the server goes away and once when it comes back.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/profile.h"

namespace perseus::client {

struct ClientOptions {
  std::string server = "http://127.0.0.1:7787";
  std::string token;  // bearer token, if the server wants one
  int64_t job_id = 0;
  int rank = 0, pp_rank = 0, dp_rank = 0, tp_rank = 0;
  std::string gpu_name;
  std::vector<int> frequencies_mhz;  // supported SM clocks; the highest is the fallback
  double poll_interval_s = 1.0;
  double max_backoff_s = 30.0;
  // Where Apply sends frequencies: a FrequencyController's Set, or anything.
  std::function<void(int mhz)> set_frequency;
  std::function<void(const std::string&)> log;  // default: stderr
};

// The backward half of an overlapped forward+backward.
struct PlannedBackward {
  planner::Instruction kind = planner::Instruction::kBackward;  // kBackward or kBackwardInput
  int stage = 0;
  int microbatch = 0;
};

// One computation of this rank's plan. For DualPipeV's overlapped
// forward+backward (kind "overlap_f_b" in the server's plan), `kind` is
// kForward, `microbatch`/`stage` are the forward half's and `backward` is set.
struct PlannedInstruction {
  planner::Instruction kind = planner::Instruction::kForward;
  int microbatch = 0;
  int stage = 0;
  int frequency_mhz = 0;
  std::optional<PlannedBackward> backward;
  bool overlapped() const { return backward.has_value(); }
};

// What an iteration ran, sent with its report (the coordinator's measured
// savings compare baseline iterations with planned ones).
struct IterationDetails {
  std::string phase;               // "warmup", "baseline", "profiling", "planned"; empty: not sent
  int64_t plan_version = -1;       // the plan version it ran; -1: not sent
  double profiling_progress = -1;  // in-job profiling: this rank's progress 0..1; -1: not sent
};

// One computation kind's measurement at one clock (in-job profiling).
struct MeasuredRow {
  planner::Instruction kind = planner::Instruction::kForward;
  int frequency_mhz = 0;
  double time_s = 0;
  double energy_j = 0;
};

// Ok, or kInvalidInput if the token holds a control character (CR, LF, NUL,
// DEL, ...): sent in the Authorization header, CR/LF would end that header and
// the rest of the token would go out as headers of its own.
Status CheckToken(std::string_view token);

class Client {
 public:
  // A client; kInvalidInput (and no client) if the options' token fails CheckToken.
  static Result<std::unique_ptr<Client>> Create(ClientOptions options);
  // Prefer Create: a token that fails CheckToken is logged and never sent.
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The planned frequency of this rank's computation (kind, microbatch) of
  // model stage `stage` (-1: any); the fallback frequency if there is no plan
  // or the plan has no such computation. A half of an overlapped
  // forward+backward is found too (it runs at its pair's clock). Never
  // touches the network.
  int FrequencyFor(planner::Instruction kind, int microbatch, int stage = -1) const;
  // The same for an overlapped forward+backward ("overlap_f_b"), found by its
  // forward half's microbatch and stage.
  int FrequencyForOverlap(int microbatch, int stage = -1) const;
  // FrequencyFor / FrequencyForOverlap, then set_frequency(mhz); returns mhz.
  int Apply(planner::Instruction kind, int microbatch, int stage = -1);
  int ApplyOverlap(int microbatch, int stage = -1);
  // An iteration ended: queues its report and wakes the refresher. `mismatches`:
  // the plan mismatches this rank met in the iteration (sent as the report's
  // "mismatches"; a negative count is sent as 0, one above kMaxMismatches as
  // kMaxMismatches, so the report's time and energy are never refused for it).
  void EndIteration(int64_t iteration, double time_s, double energy_j, int64_t mismatches = 0,
                    const IterationDetails& details = {});
  // Queues this rank's profile (PUT .../profile as JSON, with the blocking
  // power it measured; negative: none) for the background thread, which sends
  // it before the next iteration report and retries while the server is away.
  // A refusal (4xx, e.g. 409: the job already has its profile) is logged and
  // not retried; so are the warnings the upload that completes the profile
  // answers (what looks wrong in it). Never waits on the network.
  void SubmitMeasurements(const std::vector<MeasuredRow>& rows, double blocking_power_w);
  // "none", "queued", "accepted" or "refused: <the server's error>".
  std::string measurements_status() const;
  // The most plan mismatches one iteration report carries (the coordinator's limit).
  static constexpr int64_t kMaxMismatches = 1000000000;

  int64_t plan_version() const;  // 0: no plan yet
  double target_time_s() const;
  std::vector<PlannedInstruction> instructions() const;
  bool reachable() const;
  // Blocks until a plan with version > `after` arrives or `timeout_s` passes (tests, start-up).
  bool WaitForPlan(int64_t after, double timeout_s) const;

 private:
  struct Plan;
  struct Http;
  int Lookup(int kind_key, int microbatch, int stage) const;
  void Run();
  bool Register(Http& http);
  bool Refresh(Http& http);
  bool FlushReports(Http& http);
  bool FlushMeasurements(Http& http);
  void SetReachable(bool reachable, const std::string& why);
  void Log(const std::string& line) const;

  const ClientOptions options_;
  const int fallback_mhz_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::shared_ptr<const Plan> plan_;
  std::deque<std::string> reports_;  // JSON bodies not yet acknowledged
  std::string measurements_;         // a profile body not yet acknowledged
  std::string measurements_status_ = "none";
  bool wake_ = false;
  bool stop_ = false;
  bool reachable_ = true;
  std::thread thread_;
};

}  // namespace perseus::client
