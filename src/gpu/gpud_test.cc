#include "perseus/gpu/gpud.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
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
