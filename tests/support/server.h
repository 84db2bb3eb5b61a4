// What the tests of `perseus serve` share: a server process on loopback, a
// JSON client for its API, the GPT-3 profile and the must-show job.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/process.h"
#include "tests/support/profiles.h"

namespace perseus::testing {

using nlohmann::json;

inline const std::string kPerseus = std::string(PERSEUS_BIN_DIR) + "/perseus";

class ServerProcess {
 public:
  // extra: more `perseus serve` options.
  explicit ServerProcess(const std::string& db, const std::string& token_file = "", int port = 0,
                         const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {
        kPerseus, "serve", "--listen", "127.0.0.1:" + std::to_string(port), "--db", db};
    if (!token_file.empty()) {
      argv.push_back("--token-file");
      argv.push_back(token_file);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    child_ = std::make_unique<Child>(argv, std::vector<std::string>{});
    const std::string line = child_->ReadLine();  // "perseus: listening on http://127.0.0.1:PORT"
    const size_t colon = line.rfind(':');
    if (colon != std::string::npos) port_ = std::atoi(line.c_str() + colon + 1);
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Kill9() {
    child_->Kill(SIGKILL);
    child_->Wait();
  }
  int Term() {
    child_->Kill(SIGTERM);
    return child_->Wait();
  }

 private:
  std::unique_ptr<Child> child_;
  int port_ = 0;
};

struct Response {
  int status = 0;
  json body;
  std::string etag;
};

class Api {
 public:
  explicit Api(int port, std::string token = "") : client_("127.0.0.1", port) {
    client_.set_read_timeout(30, 0);
    if (!token.empty()) client_.set_bearer_token_auth(token);
  }
  Response Call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& content_type = "application/json",
                const httplib::Headers& headers = {}) {
    httplib::Result r = method == "GET"    ? client_.Get(path, headers)
                        : method == "POST" ? client_.Post(path, headers, body, content_type)
                        : method == "PUT"  ? client_.Put(path, headers, body, content_type)
                                           : client_.Delete(path, headers);
    Response out;
    if (!r) return out;
    out.status = r->status;
    out.body = json::parse(r->body, nullptr, false);
    out.etag = r->get_header_value("ETag");
    return out;
  }
  Response Post(const std::string& path, const json& body) {
    return Call("POST", path, body.dump());
  }

 private:
  httplib::Client client_;
};

// Creates the must-show job: 4 stages x 2 pipelines, every rank registered.
inline int64_t CreateJob(Api& api, int dp = 2) {
  Response r = api.Post("/v1/jobs", {{"name", "gpt3-4x2"},
                                     {"schedule", "1f1b"},
                                     {"stages", 4},
                                     {"microbatches", 8},
                                     {"tp", 1},
                                     {"dp", dp},
                                     {"blocking_power_w", 83.64}});
  EXPECT_EQ(r.status, 201) << r.body.dump();
  const int64_t job = r.body.value("job_id", int64_t{0});
  for (int rank = 0; rank < 4 * dp; ++rank) {
    Response reg = api.Post("/v1/jobs/" + std::to_string(job) + "/ranks",
                            {{"rank", rank},
                             {"pp_rank", rank % 4},
                             {"dp_rank", rank / 4},
                             {"tp_rank", 0},
                             {"gpu_name", "NVIDIA A100-SXM4-80GB"},
                             {"frequencies_mhz", A100Clocks()}});
    EXPECT_EQ(reg.status, 200) << reg.body.dump();
  }
  return job;
}

// Polls until planning ends (the guard is generous: sanitizer builds plan slowly).
inline json WaitReady(Api& api, int64_t job) {
  for (int i = 0; i < 60000; ++i) {
    Response r = api.Call("GET", "/v1/jobs/" + std::to_string(job));
    if (r.status == 200 && (r.body["state"] == "ready" || r.body["state"] == "failed"))
      return r.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

// The GPT-3 profile's first four stages as each stage's rank's measurements
// ({instruction, frequency_mhz, time_s, energy_j}, PUT .../profile's JSON form).
inline std::vector<json> StageMeasurements() {
  std::istringstream csv(ProfileCsv(4));
  std::string line;
  std::getline(csv, line);
  std::vector<json> out(4, json::array());
  while (std::getline(csv, line)) {
    std::stringstream fields(line);
    std::string stage, instruction, mhz, t, e;
    std::getline(fields, stage, ',');
    std::getline(fields, instruction, ',');
    std::getline(fields, mhz, ',');
    std::getline(fields, t, ',');
    std::getline(fields, e, ',');
    out[std::stoul(stage)].push_back({{"instruction", instruction},
                                      {"frequency_mhz", std::stoi(mhz)},
                                      {"time_s", std::stod(t)},
                                      {"energy_j", std::stod(e)}});
  }
  return out;
}

}  // namespace perseus::testing
