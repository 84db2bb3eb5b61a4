#include "perseus/gpu/gpud.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "perseus/gpu/frequency_controller.h"
#include "perseus/gpu/runtime.h"
#include "perseus/gpu/sim_gpu.h"
#include "src/gpu/testing/fake_nvml_log.h"
#include "tests/support/process.h"

namespace perseus::gpu {
namespace {

const char* kProfile = PERSEUS_DATA_DIR "/profiles/gpt3-175b+a100_sxm_bf16.csv";

// gpud on the sim backend (8 GPUs) in a thread of the test.
class GpudTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = SimBackend::FromProfileCsv(kProfile, {});
    ASSERT_TRUE(backend.ok());
    backend_ = std::move(backend).value();
    options_.socket_path = perseus::testing::TempPath("gpud.sock");
    options_.gpus = {0, 1, 2};
  }
  void TearDown() override { Stop(); }

  void Start() {
    ASSERT_EQ(pipe(stop_), 0);
    server_ = std::thread([this] { result_ = RunGpud(*backend_, options_, stop_[0]); });
    // Ready once it accepts connections.
    for (int i = 0; i < 1000; ++i) {
      if (GpudClient::Connect(options_.socket_path).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "gpud did not start";
  }
  void Stop() {
    if (!server_.joinable()) return;
    close(stop_[1]);
    server_.join();
    close(stop_[0]);
  }
  std::shared_ptr<GpudClient> Connect() {
    auto client = GpudClient::Connect(options_.socket_path);
    EXPECT_TRUE(client.ok()) << client.status().message();
    return client.ok() ? *client : nullptr;
  }
  // Polls until `gpu` is unlocked; returns the seconds it took (or -1 after 10 s).
  double WaitUnlocked(int gpu) {
    const auto start = std::chrono::steady_clock::now();
    while (backend_->sim_device(gpu).sm_clock_locked()) {
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(10)) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // A plain connection to gpud (blocking), or -1.
  int RawConnect() {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, options_.socket_path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }
  static bool SendAll(int fd, const std::string& text) {
    return send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
  }
  // One reply line (without the newline); empty if the connection closed or
  // nothing came within 10 s.
  static std::string ReadReply(int fd) {
    std::string line;
    char c = 0;
    while (true) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10000) <= 0 || recv(fd, &c, 1, 0) != 1) return "";
      if (c == '\n') return line;
      line += c;
    }
  }
  // Whether gpud closed `fd` within 10 s (whatever it sent first is skipped).
  static bool ClosedByGpud(int fd) {
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char chunk[4096];
      const ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
    return false;
  }

  std::unique_ptr<SimBackend> backend_;
  GpudOptions options_;
  int stop_[2] = {-1, -1};
  std::thread server_;
  Status result_;
};

TEST_F(GpudTest, HelloListsGpusAndWhichMayBeControlled) {
  Start();
  auto client = Connect();
  auto gpus = client->Hello();
  ASSERT_TRUE(gpus.ok()) << gpus.status().message();
  ASSERT_EQ(gpus->size(), 8u);
  EXPECT_TRUE((*gpus)[2].controllable);
  EXPECT_FALSE((*gpus)[3].controllable);
  EXPECT_EQ((*gpus)[0].clocks_mhz.size(), 38u);
  EXPECT_EQ((*gpus)[0].name, "Perseus simulated GPU");
}

TEST_F(GpudTest, SocketIsOwnerAndGroupOnly) {
  Start();
  struct stat st {};
  ASSERT_EQ(stat(options_.socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(GpudTest, LocksAndRestoresWhenTheClientDisconnects) {
  Start();
  {
    auto client = Connect();
    ASSERT_TRUE(client->LockSmClock(1, 1005).ok());
    EXPECT_EQ(*backend_->sim_device(1).CurrentSmClock(), 1005);
    ASSERT_TRUE(client->LockMemoryClockMax(1).ok());
    EXPECT_TRUE(backend_->sim_device(1).memory_clock_locked());
    auto status = client->GpuStatus();
    ASSERT_TRUE(status.ok());
    EXPECT_EQ((*status)[1].owner_pid, getpid());
    EXPECT_EQ((*status)[1].locked_mhz, 1005);
  }
  EXPECT_GE(WaitUnlocked(1), 0);
  EXPECT_FALSE(backend_->sim_device(1).memory_clock_locked());
}

TEST_F(GpudTest, RefusesBadRequests) {
  Start();
  auto a = Connect();
  auto b = Connect();
  EXPECT_EQ(a->LockSmClock(5, 1005).message(),
            "gpud: GPU 5 is not one this gpud may control (--gpus)");
  EXPECT_EQ(a->LockSmClock(9, 1005).message(), "gpud: no GPU 9 (this machine has 8)");
  EXPECT_EQ(a->LockSmClock(0, 1000).message(),
            "gpud: 1000 MHz is not a supported SM clock of GPU 0");
  ASSERT_TRUE(a->LockSmClock(0, 1200).ok());
  const std::string held = b->LockSmClock(0, 1005).message();
  EXPECT_EQ(held, "gpud: GPU 0 is held by process " + std::to_string(getpid()));
  // Released by a reset, the GPU can be taken by another client.
  ASSERT_TRUE(a->ResetSmClock(0).ok());
  EXPECT_TRUE(b->LockSmClock(0, 1005).ok());
}

TEST_F(GpudTest, SurvivesGarbage) {
  Start();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, options_.socket_path.c_str());
  std::mt19937 rng(3);
  const std::vector<std::string> seeds = {
      "{\"op\":\"lock_sm\",\"gpu\":0,\"mhz\":1005}",
      "{\"op\":\"hello\"}",
      "[1,2,3]",
      "null",
      "{\"op\":7}",
      "{\"op\":\"lock_sm\",\"gpu\":\"0\"}",
      "{\"op\":\"lock_sm\",\"gpu\":-1}",
      "{\"op\":\"lock_sm\",\"gpu\":18446744073709551615,\"mhz\":1}",
      "{\"op\":\"\xff\xfe\"}"};
  for (int round = 0; round < 300; ++round) {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string line = seeds[rng() % seeds.size()];
    const int mutations = static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !line.empty(); ++m) {
      line[rng() % line.size()] = static_cast<char>(rng() % 256);
    }
    line += "\n";
    ASSERT_EQ(send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    char reply[4096];
    const ssize_t n = recv(fd, reply, sizeof reply, 0);
    ASSERT_GT(n, 0) << "no reply to " << line;
    EXPECT_EQ(std::string(reply, static_cast<size_t>(n)).back(), '\n');
    close(fd);
  }
  // An over-long line is refused and the connection closed.
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string big(100000, 'x');
  (void)send(fd, big.data(), big.size(), MSG_NOSIGNAL);
  char reply[4096];
  const ssize_t n = recv(fd, reply, sizeof reply, 0);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(reply, static_cast<size_t>(n)).find("longer than 64 KiB"),
            std::string::npos);
  close(fd);
  auto client = Connect();
  EXPECT_TRUE(client->Hello().ok());  // still serving
  EXPECT_GE(WaitUnlocked(0), 0);      // garbage clients' locks were undone on disconnect
}

TEST_F(GpudTest, AClientThatStopsReadingIsDroppedNotWaitedFor) {
  Start();
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, options_.socket_path.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  // Requests whose replies (about 1.5 KB each) are never read.
  const std::string requests = std::string(R"({"op":"hello"})") + "\n";
  for (int i = 0; i < 20000; ++i) {
    if (send(fd, requests.data(), requests.size(), MSG_NOSIGNAL) < 0) break;
  }
  auto other = Connect();
  EXPECT_TRUE(other->Hello().ok());  // gpud still answers everyone else
  close(fd);
}

// Regression: gpud never timed out a connection, so clients that connected
// and sent nothing, or half a request, kept their descriptors for ever. Being
// idle after complete requests is allowed: it must not cost a holder its GPUs.
TEST_F(GpudTest, ClosesConnectionsWithNoOrAnUnfinishedRequestButNotIdleHolders) {
  options_.idle_timeout_s = 0.5;  // small, with room for a loaded machine
  Start();
  auto holder = Connect();  // holds GPU 1, then stays silent
  ASSERT_TRUE(holder->LockSmClock(1, 1005).ok());
  const int answered = RawConnect();  // one complete request, then silent
  ASSERT_TRUE(SendAll(answered, "{\"op\":\"hello\"}\n"));
  ASSERT_NE(ReadReply(answered), "");
  const int silent = RawConnect();   // never sends anything
  const int partial = RawConnect();  // starts its first request, never finishes
  ASSERT_TRUE(SendAll(partial, "{\"op\":\"hel"));
  const int locker = RawConnect();  // holds GPU 2, then leaves a request unfinished
  ASSERT_TRUE(SendAll(locker, "{\"op\":\"lock_sm\",\"gpu\":2,\"mhz\":1005}\n"));
  ASSERT_EQ(ReadReply(locker), "{\"ok\":true}");
  ASSERT_TRUE(backend_->sim_device(2).sm_clock_locked());
  ASSERT_TRUE(SendAll(locker, "{\"op\""));
  ASSERT_NE(silent, -1);
  ASSERT_NE(partial, -1);
  EXPECT_TRUE(ClosedByGpud(silent));
  EXPECT_TRUE(ClosedByGpud(partial));
  EXPECT_TRUE(ClosedByGpud(locker));
  EXPECT_GE(WaitUnlocked(2), 0) << "closing the connection restores what it held";
  // Trickling bytes of an unfinished line does not extend its time.
  const int trickle = RawConnect();
  ASSERT_TRUE(SendAll(trickle, "{\"op\":\"hello\"}\n"));
  ASSERT_NE(ReadReply(trickle), "");
  bool closed = false;
  char byte = 0;
  for (int i = 0; i < 500 && !closed; ++i) {
    pollfd p{trickle, POLLIN, 0};
    closed = !SendAll(trickle, " ") || (poll(&p, 1, 20) > 0 && recv(trickle, &byte, 1, 0) <= 0);
  }
  EXPECT_TRUE(closed) << "a line trickled for 10 s was never closed";
  // Well past the timeout, the idle connections that completed their requests
  // are still open, the holder's GPU still locked by it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_TRUE(backend_->sim_device(1).sm_clock_locked());
  pollfd p{answered, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0) << "an idle connection was closed";
  ASSERT_TRUE(SendAll(answered, "{\"op\":\"status\"}\n"));
  EXPECT_NE(ReadReply(answered).find("\"ok\":true"), std::string::npos);
  auto status = holder->GpuStatus();
  ASSERT_TRUE(status.ok()) << status.status().message();
  EXPECT_EQ((*status)[1].owner_pid, getpid());
  EXPECT_EQ((*status)[1].locked_mhz, 1005);
  for (int fd : {answered, silent, partial, locker, trickle}) close(fd);
}

// CPU seconds (user + system) the process has used so far.
double CpuSeconds(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // utime is field 14, stime 15
    if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Regression: out of file descriptors, accept4 failed with EMFILE while the
// listening socket stayed readable, and gpud spun at 100% CPU.
TEST_F(GpudTest, OutOfDescriptorsItServesItsClientsWithoutSpinningAndRecovers) {
  int log_pipe[2], stop[2];
  ASSERT_EQ(pipe(log_pipe), 0);
  ASSERT_EQ(pipe(stop), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // gpud, in a process of its own with few descriptors
    // Only stdio, the log and the stop pipe stay open, low; then the limit
    // leaves room for the listening socket and three clients.
    std::vector<int> open_fds;
    if (DIR* dir = opendir("/proc/self/fd")) {
      while (const dirent* entry = readdir(dir)) {
        if (entry->d_name[0] != '.') open_fds.push_back(atoi(entry->d_name));
      }
      closedir(dir);
    }
    for (int fd : open_fds) {
      if (fd > 2 && fd != log_pipe[1] && fd != stop[0]) close(fd);
    }
    const int log_fd = fcntl(log_pipe[1], F_DUPFD_CLOEXEC, 3);
    close(log_pipe[1]);
    const int stop_fd = fcntl(stop[0], F_DUPFD_CLOEXEC, 3);
    close(stop[0]);
    if (log_fd < 0 || stop_fd < 0) _exit(2);
    options_.log = [log_fd](const std::string& line) {
      const std::string text = line + "\n";
      [[maybe_unused]] ssize_t n = write(log_fd, text.data(), text.size());
    };
    const auto room = static_cast<rlim_t>(std::max(log_fd, stop_fd) + 1 + 4);
    const rlimit limit{room, room};
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(2);
    _exit(RunGpud(*backend_, options_, stop_fd).ok() ? 0 : 1);
  }
  struct Reaper {  // a failed assertion must not leave gpud running
    pid_t pid;
    ~Reaper() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{pid};
  close(log_pipe[1]);
  close(stop[0]);
  std::string log;
  // Reads gpud's log until it contains `text` (10 s at most).
  auto wait_log = [&](const std::string& text) {
    const auto start = std::chrono::steady_clock::now();
    while (log.find(text) == std::string::npos &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
      pollfd p{log_pipe[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(log_pipe[0], chunk, sizeof chunk);
      if (n <= 0) break;
      log.append(chunk, static_cast<size_t>(n));
    }
    return log.find(text) != std::string::npos;
  };
  ASSERT_TRUE(wait_log("serving"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->LockSmClock(0, 1005).ok());
  // More connections than gpud has descriptors for.
  std::vector<int> extra;
  for (int i = 0; i < 40; ++i) {
    const int fd = RawConnect();
    ASSERT_NE(fd, -1);
    extra.push_back(fd);
  }
  ASSERT_TRUE(wait_log("cannot accept connections")) << log;
  // It still serves the client it has, and does not spin.
  EXPECT_TRUE(client->Hello().ok());
  const double cpu_start = CpuSeconds(pid);
  const auto wall_start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const double cpu = CpuSeconds(pid) - cpu_start;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  EXPECT_GE(cpu_start, 0);
  EXPECT_LT(cpu, 0.5 * wall) << "gpud used " << cpu << " CPU s in " << wall << " s";
  auto status = client->GpuStatus();
  ASSERT_TRUE(status.ok()) << status.status().message();
  EXPECT_EQ((*status)[0].locked_mhz, 1005);
  for (pollfd p{log_pipe[0], POLLIN, 0}; poll(&p, 1, 0) > 0;) {  // what is there by now
    char chunk[4096];
    const ssize_t n = read(log_pipe[0], chunk, sizeof chunk);
    if (n <= 0) break;
    log.append(chunk, static_cast<size_t>(n));
  }
  size_t reported = 0;
  for (size_t at = log.find("cannot accept"); at != std::string::npos;
       at = log.find("cannot accept", at + 1)) {
    ++reported;
  }
  EXPECT_EQ(reported, 1u) << "logged once, not per retry:\n" << log;
  // Descriptors free up: a new client is accepted and served.
  for (int fd : extra) close(fd);
  auto fresh = Connect();
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(fresh->Hello().ok());
  EXPECT_TRUE(wait_log("accepting connections again")) << log;
  close(stop[1]);
  int wait_status = 0;
  ASSERT_EQ(waitpid(pid, &wait_status, 0), pid);
  reaper.pid = 0;
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) << wait_status;
  close(log_pipe[0]);
}

TEST_F(GpudTest, KilledClientsClocksAreRestored) {
  Start();
  perseus::testing::Child child({CONTROLLER_HELPER, "gpud", options_.socket_path, "2", "1005"}, {});
  ASSERT_EQ(child.ReadLine(), "locked");
  EXPECT_EQ(*backend_->sim_device(2).CurrentSmClock(), 1005);
  child.Kill(SIGKILL);  // WaitUnlocked times from here
  const double seconds = WaitUnlocked(2);
  child.Wait();
  ASSERT_GE(seconds, 0) << "GPU 2 still locked 10 s after its client was killed";
  std::printf("[ measured ] clocks restored %.1f ms after the client's death\n", seconds * 1e3);
}

TEST_F(GpudTest, ControllerThroughGpud) {
  Start();
  auto client = Connect();
  RemoteGpu gpu(client, 0);
  {
    FrequencyController controller(gpu);
    controller.Set(1200);
    ASSERT_TRUE(controller.Flush().ok());
    EXPECT_EQ(*backend_->sim_device(0).CurrentSmClock(), 1200);
    controller.Set(1000);  // not supported: gpud refuses, the controller reports it
    EXPECT_NE(controller.Flush().message().find("not a supported SM clock"), std::string::npos);
  }
  EXPECT_FALSE(backend_->sim_device(0).sm_clock_locked());  // the destructor reset it
}

TEST_F(GpudTest, StoppingRestoresAndRemovesTheSocket) {
  Start();
  auto client = Connect();
  ASSERT_TRUE(client->LockSmClock(0, 1005).ok());
  Stop();
  EXPECT_FALSE(backend_->sim_device(0).sm_clock_locked());
  struct stat st {};
  EXPECT_NE(stat(options_.socket_path.c_str(), &st), 0);
  EXPECT_TRUE(result_.ok()) << result_.message();
  // The client notices and says so.
  Status s = client->LockSmClock(0, 1005);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
}

TEST_F(GpudTest, ReplacesAStaleSocketButNotALiveOne) {
  Start();
  Status second = RunGpud(*backend_, options_, -1);
  EXPECT_EQ(second.code(), StatusCode::kUnavailable);
  EXPECT_NE(second.message().find("another gpud"), std::string::npos);
  Stop();
  // A socket file left by a dead gpud.
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, options_.socket_path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
  Start();
  EXPECT_TRUE(Connect()->Hello().ok());
}

TEST_F(GpudTest, RuntimeSendsClocksThroughGpudWhenConfigured) {
  Start();
  RuntimeConfig config;
  config.backend = "sim";
  config.sim_profile = kProfile;
  config.gpud_socket = options_.socket_path;
  auto runtime = GpuRuntime::Open(config);
  ASSERT_TRUE(runtime.ok()) << runtime.status().message();
  EXPECT_TRUE((*runtime)->through_gpud());
  auto clocks = (*runtime)->clocks(1);
  ASSERT_TRUE(clocks.ok());
  ASSERT_TRUE((*clocks)->LockSmClock(1200).ok());
  // gpud's GPU was locked, not the runtime's own simulated one.
  EXPECT_EQ(*backend_->sim_device(1).CurrentSmClock(), 1200);
  EXPECT_FALSE((*runtime)->backend().device(1).CurrentSmClock().value() == 1200);
  EXPECT_FALSE((*runtime)->clocks(8).ok());
  config.gpud_socket.clear();
  auto direct = GpuRuntime::Open(config);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*(*direct)->clocks(1), static_cast<ClockTarget*>(&(*direct)->backend().device(1)));
}

TEST(GpudClientTest, ExplainsAMissingDaemon) {
  auto client = GpudClient::Connect("/nonexistent/gpud.sock");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(client.status().message().find("gpud is not running"), std::string::npos);
}

}  // namespace
}  // namespace perseus::gpu
