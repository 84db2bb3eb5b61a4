// Request counters and latency histograms per route, requests and connections
// rejected by reason, in Prometheus text format.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>

#include "src/server/coordinator.h"

namespace perseus::server {

class Metrics {
 public:
  void Observe(const std::string& route, int status, double seconds);
  // A request or connection refused: "unauthorized", "no_route", "not_found",
  // "body_too_large", "bad_request", "request_timeout", "connection_limit", ...
  void Reject(const std::string& reason);
  std::string Render(const CoordinatorStats& stats, int open_connections);

 private:
  static constexpr std::array<double, 11> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> latency_;
  std::map<std::string, uint64_t> rejected_;  // reason -> count
};

}  // namespace perseus::server
