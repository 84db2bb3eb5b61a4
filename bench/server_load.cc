// Load on the coordinator: 1024 simulated ranks (8 stages x 128 pipelines) on
// loopback register, fetch their plans, report iterations and poll; then one
// pipeline straggles and every rank's next fetch must see the new plan.
// --idle N / --slow N: meanwhile N connections stay open sending nothing, and
// N more send one header byte every 2 s (reconnecting when the server closes
// them), as slow or idle clients would.
//   build/bin/server_load [--threads 32] [--idle 200] [--slow 32]
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "perseus/server/server.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kStages = 8, kPipelines = 128, kRanks = kStages * kPipelines;

struct Phase {
  std::string name;
  std::vector<double> latencies_s;
  double wall_s = 0;
  int failures = 0;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// Runs fn(rank, client) for every rank on `threads` threads; each call is one request.
template <typename Fn>
Phase Run(const std::string& name, int port, int threads, Fn fn) {
  Phase phase{name, {}, 0, 0};
  std::vector<std::vector<double>> per_thread(static_cast<size_t>(threads));
  std::atomic<int> next{0}, failures{0};
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", port);
      for (int rank; (rank = next.fetch_add(1)) < kRanks;) {
        const auto t0 = Clock::now();
        const bool ok = fn(rank, client);
        per_thread[static_cast<size_t>(t)].push_back(
            std::chrono::duration<double>(Clock::now() - t0).count());
        if (!ok) ++failures;
      }
    });
  }
  for (auto& th : pool) th.join();
  phase.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& v : per_thread) phase.latencies_s.insert(phase.latencies_s.end(), v.begin(), v.end());
  phase.failures = failures;
  return phase;
}

int Connect(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

// Idle and slow connections held open until stop.
class Pests {
 public:
  Pests(int port, int idle, int slow) {
    for (int i = 0; i < idle; ++i) {
      if (int s = Connect(port); s >= 0) idle_.push_back(s);
    }
    for (int i = 0; i < slow; ++i) {
      slow_.emplace_back([this, port] {
        while (!stop_) {
          const int s = Connect(port);
          if (s < 0) return;
          const std::string header = "GET /healthz HTTP/1.1\r\nX-Slow: " + std::string(8000, 'a');
          for (char byte : header) {
            for (int tick = 0; tick < 20 && !stop_; ++tick) {
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            if (stop_ || ::send(s, &byte, 1, MSG_NOSIGNAL) != 1) break;
            char reply[512];
            if (::recv(s, reply, sizeof reply, MSG_DONTWAIT) >= 0) break;  // answered or closed
          }
          ::close(s);
        }
      });
    }
  }
  ~Pests() {
    stop_ = true;
    for (auto& t : slow_) t.join();
    for (int s : idle_) ::close(s);
  }
  size_t idle() const { return idle_.size(); }

 private:
  std::atomic<bool> stop_{false};
  std::vector<int> idle_;
  std::vector<std::thread> slow_;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 32, idle = 0, slow = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--idle") == 0) idle = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--slow") == 0) slow = std::atoi(argv[i + 1]);
  }
  const std::string db = "/tmp/perseus-server-load-" + std::to_string(getpid()) + ".db";
  perseus::server::ServerOptions options;
  options.db_path = db;
  options.threads = 64;
  auto server = perseus::server::Server::Open(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().message().c_str());
    return 1;
  }
  const int port = *(*server)->Bind("127.0.0.1", 0);
  std::thread serving([&] { (void)(*server)->Run(); });
  auto pests = std::make_unique<Pests>(port, idle, slow);

  httplib::Client admin("127.0.0.1", port);
  admin.set_read_timeout(60, 0);
  auto created = admin.Post("/v1/jobs",
                            json{{"name", "load"},
                                 {"stages", kStages},
                                 {"microbatches", 16},
                                 {"dp", kPipelines},
                                 {"blocking_power_w", 83.64}}
                                .dump(),
                            "application/json");
  const int64_t job = json::parse(created->body)["job_id"];
  const std::string base = "/v1/jobs/" + std::to_string(job);
  std::vector<int> clocks;
  for (int mhz = 1410; mhz >= 855; mhz -= 15) clocks.push_back(mhz);

  std::vector<Phase> phases;
  phases.push_back(Run("register", port, threads, [&](int rank, httplib::Client& c) {
    auto r = c.Post(base + "/ranks",
                    json{{"rank", rank},
                         {"pp_rank", rank % kStages},
                         {"dp_rank", rank / kStages},
                         {"tp_rank", 0},
                         {"gpu_name", "A100"},
                         {"frequencies_mhz", clocks}}
                        .dump(),
                    "application/json");
    return r && r->status == 200;
  }));
  std::ifstream in(PERSEUS_DATA_DIR "/profiles/gpt3-175b+a100_sxm_bf16.csv");
  std::stringstream csv;
  csv << in.rdbuf();
  admin.Put(base + "/profile", csv.str(), "text/csv");
  const auto plan_start = Clock::now();
  for (;;) {
    auto r = admin.Get(base);
    if (r && json::parse(r->body)["state"] == "ready") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double planning_s = std::chrono::duration<double>(Clock::now() - plan_start).count();

  std::vector<std::string> etags(kRanks);
  std::vector<int64_t> versions(kRanks);
  phases.push_back(Run("fetch plan", port, threads, [&](int rank, httplib::Client& c) {
    auto r = c.Get(base + "/plan?rank=" + std::to_string(rank));
    if (!r || r->status != 200) return false;
    etags[static_cast<size_t>(rank)] = r->get_header_value("ETag");
    versions[static_cast<size_t>(rank)] = json::parse(r->body)["version"];
    return true;
  }));
  phases.push_back(Run("report iteration", port, threads, [&](int rank, httplib::Client& c) {
    auto r =
        c.Post(base + "/iterations",
               json{{"rank", rank}, {"iteration", 0}, {"time_s", 1.57}, {"energy_j", 700.0}}.dump(),
               "application/json");
    return r && r->status == 200;
  }));
  phases.push_back(Run("poll unchanged (304)", port, threads, [&](int rank, httplib::Client& c) {
    auto r = c.Get(base + "/plan?rank=" + std::to_string(rank),
                   {{"If-None-Match", etags[static_cast<size_t>(rank)]}});
    return r && r->status == 304;
  }));
  auto straggler = admin.Post(base + "/stragglers", json{{"pipeline", 0}, {"slowdown", 1.2}}.dump(),
                              "application/json");
  std::atomic<int> changed{0}, unchanged_straggler{0};
  phases.push_back(Run("poll after straggler", port, threads, [&](int rank, httplib::Client& c) {
    auto r = c.Get(base + "/plan?rank=" + std::to_string(rank),
                   {{"If-None-Match", etags[static_cast<size_t>(rank)]}});
    if (!r) return false;
    const bool straggler_rank = rank / kStages == 0;
    if (straggler_rank) {
      if (r->status == 304) ++unchanged_straggler;
      return r->status == 304;
    }
    if (r->status != 200) return false;
    if (json::parse(r->body)["version"].get<int64_t>() > versions[static_cast<size_t>(rank)]) {
      ++changed;
    }
    return true;
  }));

  std::printf(
      "coordinator load: %d ranks (%d stages x %d pipelines), %d client threads, "
      "%d server threads, loopback, one connection per request\n",
      kRanks, kStages, kPipelines, threads, options.threads);
  std::printf("meanwhile: %zu idle connections open, %d slow clients (a header byte every 2 s)\n",
              pests->idle(), slow);
  std::printf("planning (8x16, %zu-byte profile): %.3f s; straggler POST: HTTP %d\n",
              csv.str().size(), planning_s, straggler ? straggler->status : 0);
  std::printf("%-22s %9s %12s %10s %10s %10s\n", "phase", "requests", "req/s", "p50 ms", "p99 ms",
              "failures");
  for (const Phase& p : phases) {
    std::printf("%-22s %9zu %12.0f %10.3f %10.3f %10d\n", p.name.c_str(), p.latencies_s.size(),
                static_cast<double>(p.latencies_s.size()) / p.wall_s,
                1e3 * Percentile(p.latencies_s, 0.5), 1e3 * Percentile(p.latencies_s, 0.99),
                p.failures);
  }
  std::printf(
      "after the straggler report: %d of %d non-straggler ranks fetched a new plan "
      "version; %d of %d straggler ranks kept theirs (304)\n",
      changed.load(), kRanks - kStages, unchanged_straggler.load(), kStages);
  pests.reset();
  (*server)->Stop();
  serving.join();
  for (const char* suffix : {"", "-wal", "-shm"}) unlink((db + suffix).c_str());
  return changed.load() == kRanks - kStages ? 0 : 1;
}
