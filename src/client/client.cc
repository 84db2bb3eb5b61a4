#include "perseus/client/client.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "nlohmann/json.hpp"

namespace perseus::client {

using nlohmann::json;

struct Client::Plan {
  int64_t version = 0;
  double target_time_s = 0;
  std::string etag;
  std::vector<PlannedInstruction> instructions;
  // (kind, microbatch, stage) -> frequency; kind is an Instruction's value, or
  // kOverlapKey for an overlapped forward+backward (by its forward half)
  std::map<std::tuple<int, int, int>, int> by_key;
  std::map<std::pair<int, int>, int> by_kind_microbatch;
};

struct Client::Http {
  explicit Http(const ClientOptions& o) : client(o.server) {
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(10, 0);
    client.set_write_timeout(10, 0);
    if (!o.token.empty() && CheckToken(o.token).ok()) client.set_bearer_token_auth(o.token);
  }
  httplib::Client client;
};

namespace {

constexpr int kOverlapKey = 4;  // after the four Instruction values

int Highest(const std::vector<int>& frequencies) {
  return frequencies.empty() ? 0 : *std::max_element(frequencies.begin(), frequencies.end());
}

std::string Describe(const httplib::Result& result) {
  if (!result) return httplib::to_string(result.error());
  std::string text = "HTTP " + std::to_string(result->status);
  const json body = json::parse(result->body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    text += ": " + body["error"].get<std::string>();
  }
  return text;
}

}  // namespace

Status CheckToken(std::string_view token) {
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c < 0x20 || c == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", c);
      return Status::InvalidInput(
          std::string("the token holds a control character (") + code + " at byte " +
          std::to_string(i) +
          "): a bearer token is sent in the Authorization header and must be printable");
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  if (Status s = CheckToken(options.token); !s.ok()) return s;
  return std::make_unique<Client>(std::move(options));
}

Client::Client(ClientOptions options)
    : options_(std::move(options)), fallback_mhz_(Highest(options_.frequencies_mhz)) {
  if (Status s = CheckToken(options_.token); !s.ok()) {
    Log("perseus client: not sending the token: " + s.message());
  }
  thread_ = std::thread([this] { Run(); });
}

Client::~Client() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

int Client::Lookup(int kind_key, int microbatch, int stage) const {
  std::shared_ptr<const Plan> plan;
  {
    std::lock_guard<std::mutex> lock(mu_);
    plan = plan_;
  }
  if (plan == nullptr) return fallback_mhz_;
  if (stage >= 0) {
    auto it = plan->by_key.find({kind_key, microbatch, stage});
    return it == plan->by_key.end() ? fallback_mhz_ : it->second;
  }
  auto it = plan->by_kind_microbatch.find({kind_key, microbatch});
  return it == plan->by_kind_microbatch.end() ? fallback_mhz_ : it->second;
}

int Client::FrequencyFor(planner::Instruction kind, int microbatch, int stage) const {
  return Lookup(static_cast<int>(kind), microbatch, stage);
}

int Client::FrequencyForOverlap(int microbatch, int stage) const {
  return Lookup(kOverlapKey, microbatch, stage);
}

int Client::Apply(planner::Instruction kind, int microbatch, int stage) {
  const int mhz = FrequencyFor(kind, microbatch, stage);
  if (options_.set_frequency && mhz > 0) options_.set_frequency(mhz);
  return mhz;
}

int Client::ApplyOverlap(int microbatch, int stage) {
  const int mhz = FrequencyForOverlap(microbatch, stage);
  if (options_.set_frequency && mhz > 0) options_.set_frequency(mhz);
  return mhz;
}

void Client::EndIteration(int64_t iteration, double time_s, double energy_j, int64_t mismatches,
                          const IterationDetails& details) {
  json report = {{"rank", options_.rank},
                 {"iteration", iteration},
                 {"time_s", time_s},
                 {"energy_j", energy_j},
                 {"mismatches", std::clamp<int64_t>(mismatches, 0, kMaxMismatches)}};
  if (!details.phase.empty()) report["phase"] = details.phase;
  if (details.plan_version >= 0) report["plan_version"] = details.plan_version;
  if (details.profiling_progress >= 0) {
    report["profiling_progress"] = std::clamp(details.profiling_progress, 0.0, 1.0);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    reports_.push_back(report.dump());
    if (reports_.size() > 10000) reports_.pop_front();  // bounded while the server is away
    wake_ = true;
  }
  changed_.notify_all();
}

void Client::SubmitMeasurements(const std::vector<MeasuredRow>& rows, double blocking_power_w) {
  json measurements = json::array();
  for (const MeasuredRow& r : rows) {
    measurements.push_back({{"instruction", planner::InstructionName(r.kind)},
                            {"frequency_mhz", r.frequency_mhz},
                            {"time_s", r.time_s},
                            {"energy_j", r.energy_j}});
  }
  json body = {{"rank", options_.rank}, {"measurements", measurements}};
  if (blocking_power_w >= 0) body["blocking_power_w"] = blocking_power_w;
  {
    std::lock_guard<std::mutex> lock(mu_);
    measurements_ = body.dump();
    measurements_status_ = "queued";
    wake_ = true;
  }
  changed_.notify_all();
}

std::string Client::measurements_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return measurements_status_;
}

bool Client::FlushMeasurements(Http& http) {
  std::string body;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (measurements_.empty()) return true;
    body = measurements_;
  }
  auto result = http.client.Put("/v1/jobs/" + std::to_string(options_.job_id) + "/profile", body,
                                "application/json");
  if (!result || result->status >= 500) {
    SetReachable(false, Describe(result));
    return false;
  }
  std::string status = "accepted";
  const json reply = json::parse(result->body, nullptr, false);
  if (result->status < 400 && reply.is_object()) {
    // The upload that completes the profile carries what looks wrong in it
    // (the job's warnings): said in the training job's log, where people look.
    auto warnings = reply.find("warnings");
    if (warnings != reply.end() && warnings->is_array()) {
      for (const json& w : *warnings) {
        if (!w.is_string()) continue;
        Log("perseus client: rank " + std::to_string(options_.rank) +
            ": the coordinator warns about the job's profile: " + w.get<std::string>());
      }
    }
  }
  if (result->status >= 400) {
    status = "refused: " + (reply.is_object() ? reply.value("error", result->body) : result->body);
    Log("perseus client: rank " + std::to_string(options_.rank) +
        ": the coordinator refused this rank's profile (HTTP " + std::to_string(result->status) +
        "): " + status.substr(9));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (measurements_ == body) measurements_.clear();  // not replaced meanwhile
  measurements_status_ = status;
  return true;
}

int64_t Client::plan_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return plan_ == nullptr ? 0 : plan_->version;
}

double Client::target_time_s() const {
  std::lock_guard<std::mutex> lock(mu_);
  return plan_ == nullptr ? 0 : plan_->target_time_s;
}

std::vector<PlannedInstruction> Client::instructions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return plan_ == nullptr ? std::vector<PlannedInstruction>{} : plan_->instructions;
}

bool Client::reachable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reachable_;
}

bool Client::WaitForPlan(int64_t after, double timeout_s) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                           [&] { return plan_ != nullptr && plan_->version > after; });
}

void Client::SetReachable(bool reachable, const std::string& why) {
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = reachable_ != reachable;
    reachable_ = reachable;
  }
  if (!changed) return;
  const std::string line =
      reachable
          ? "perseus client: coordinator " + options_.server + " reachable again"
          : "perseus client: coordinator " + options_.server + " unreachable (" + why +
                "); keeping " + (plan_version() > 0 ? "the last plan" : "the highest frequency") +
                " and retrying";
  Log(line);
}

void Client::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

bool Client::Register(Http& http) {
  json body = {{"rank", options_.rank},         {"pp_rank", options_.pp_rank},
               {"dp_rank", options_.dp_rank},   {"tp_rank", options_.tp_rank},
               {"gpu_name", options_.gpu_name}, {"frequencies_mhz", options_.frequencies_mhz}};
  auto result = http.client.Post("/v1/jobs/" + std::to_string(options_.job_id) + "/ranks",
                                 body.dump(), "application/json");
  if (result && result->status == 200) return true;
  SetReachable(false, Describe(result));
  return false;
}

bool Client::Refresh(Http& http) {
  httplib::Headers headers;
  std::string etag;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (plan_ != nullptr) etag = plan_->etag;
  }
  if (!etag.empty()) headers.emplace("If-None-Match", etag);
  auto result = http.client.Get(
      "/v1/jobs/" + std::to_string(options_.job_id) + "/plan?rank=" + std::to_string(options_.rank),
      headers);
  if (!result) {
    SetReachable(false, Describe(result));
    return false;
  }
  if (result->status == 304) return true;
  if (result->status == 409) return true;  // not planned yet: keep waiting, server is fine
  if (result->status != 200) {
    SetReachable(false, Describe(result));
    return false;
  }
  const json j = json::parse(result->body, nullptr, false);
  auto plan = std::make_shared<Plan>();
  try {
    plan->version = j.at("version").get<int64_t>();
    plan->target_time_s = j.at("target_time").get<double>();
    plan->etag = result->get_header_value("ETag");
    auto add = [&](int kind_key, int microbatch, int stage, int mhz) {
      plan->by_key.emplace(std::make_tuple(kind_key, microbatch, stage), mhz);
      plan->by_kind_microbatch.emplace(std::make_pair(kind_key, microbatch), mhz);
    };
    for (const json& i : j.at("instructions")) {
      PlannedInstruction p;
      const std::string kind = i.at("kind").get<std::string>();
      if (kind == "overlap_f_b") {
        const json& b = i.at("backward");
        PlannedBackward backward;
        if (!planner::ParseInstruction(b.at("kind").get<std::string>(), &backward.kind)) continue;
        backward.stage = b.at("stage").get<int>();
        backward.microbatch = b.at("microbatch").get<int>();
        p.backward = backward;
      } else if (!planner::ParseInstruction(kind, &p.kind)) {
        continue;
      }
      p.microbatch = i.at("microbatch").get<int>();
      p.stage = i.at("stage").get<int>();
      p.frequency_mhz = i.at("frequency_mhz").get<int>();
      if (p.overlapped()) {
        // The pair by its forward half; each half also by itself.
        add(kOverlapKey, p.microbatch, p.stage, p.frequency_mhz);
        add(static_cast<int>(planner::Instruction::kForward), p.microbatch, p.stage,
            p.frequency_mhz);
        add(static_cast<int>(p.backward->kind), p.backward->microbatch, p.backward->stage,
            p.frequency_mhz);
      } else {
        add(static_cast<int>(p.kind), p.microbatch, p.stage, p.frequency_mhz);
      }
      plan->instructions.push_back(p);
    }
  } catch (const json::exception& e) {
    SetReachable(false, std::string("malformed plan: ") + e.what());
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    plan_ = std::move(plan);
  }
  changed_.notify_all();
  return true;
}

bool Client::FlushReports(Http& http) {
  for (;;) {
    std::string body;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (reports_.empty()) return true;
      body = reports_.front();
    }
    auto result = http.client.Post("/v1/jobs/" + std::to_string(options_.job_id) + "/iterations",
                                   body, "application/json");
    if (!result || result->status >= 500) {
      SetReachable(false, Describe(result));
      return false;
    }
    // 2xx stored; 4xx will never be accepted: drop it either way.
    std::lock_guard<std::mutex> lock(mu_);
    if (!reports_.empty()) reports_.pop_front();
  }
}

void Client::Run() {
  Http http(options_);
  bool registered = false;
  double backoff_s = 0.1;
  for (;;) {
    bool ok = true;
    if (!registered) ok = registered = Register(http);
    if (ok) ok = FlushMeasurements(http) && FlushReports(http) && Refresh(http);
    if (ok) {
      SetReachable(true, "");
      backoff_s = 0.1;
    } else {
      backoff_s = std::min(backoff_s * 2, options_.max_backoff_s);
    }
    const double wait_s = ok ? options_.poll_interval_s : backoff_s;
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::duration<double>(wait_s),
                      [&] { return stop_ || (ok && wake_); });
    if (stop_) return;
    wake_ = false;
  }
}

}  // namespace perseus::client
