// gpud's event loop: poll() over the listening socket, the clients and the
// stop descriptor; single-threaded, so GPU state needs no locks.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include "nlohmann/json.hpp"
#include "perseus/common/json_text.h"
#include "perseus/gpu/gpud.h"

namespace perseus::gpu {
namespace {

using nlohmann::json;

constexpr size_t kMaxLine = 64 * 1024;
// Out of file descriptors, accepting pauses this long at a time.
constexpr std::chrono::milliseconds kAcceptPause(100);

using Clock = std::chrono::steady_clock;

struct GpuState {
  Device* device = nullptr;
  std::vector<int> clocks;  // supported, highest first
  bool controllable = false;
  int owner = -1;  // client fd holding it
  int locked_mhz = 0;
  bool memory_locked = false;
};

struct ClientState {
  int pid = 0;
  unsigned uid = 0;
  std::string buffer;
  bool answered = false;  // has completed a request
  // When the clock of the timeout started: the connection's accept until its
  // first complete request, then the first byte of the unfinished line.
  Clock::time_point since;
  // Whether the timeout applies now (see gpud.h): no request completed yet, or
  // part of a line pending.
  bool timed() const { return !answered || !buffer.empty(); }
};

std::string ErrnoText() { return std::strerror(errno); }

class Gpud {
 public:
  Gpud(Backend& backend, const GpudOptions& options) : backend_(backend), options_(options) {}

  Status Init() {
    for (int i = 0; i < backend_.device_count(); ++i) {
      GpuState state;
      state.device = &backend_.device(i);
      state.controllable =
          options_.gpus.empty() ||
          std::find(options_.gpus.begin(), options_.gpus.end(), i) != options_.gpus.end();
      auto clocks = state.device->SupportedSmClocks();
      if (clocks.ok()) {
        state.clocks = std::move(clocks).value();
      } else if (state.controllable) {
        return Status(clocks.status());
      }
      gpus_.push_back(std::move(state));
    }
    for (int g : options_.gpus) {
      if (g < 0 || g >= backend_.device_count()) {
        return Status::InvalidInput("--gpus names GPU " + std::to_string(g) + ", but the " +
                                    backend_.name() + " backend has " +
                                    std::to_string(backend_.device_count()));
      }
    }
    if (options_.reset_on_start) {
      for (GpuState& gpu : gpus_) {
        if (!gpu.controllable) continue;
        Status s = gpu.device->ResetSmClock();
        if (!s.ok()) return s;
        (void)gpu.device->ResetMemoryClock();  // may be unsupported; harmless
      }
    }
    return Listen();
  }

  Status Serve(int stop_fd) {
    Log("serving " + std::to_string(Controllable()) + " GPU(s) on " + options_.socket_path);
    for (;;) {
      const Clock::time_point now = Clock::now();
      const bool accepting = now >= accept_paused_until_;
      std::vector<pollfd> fds;
      // While accepting is paused the listening socket is left out (a negative
      // fd is ignored by poll), or its pending connections would wake us at once.
      fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
      if (stop_fd >= 0) fds.push_back({stop_fd, POLLIN, 0});
      for (const auto& [fd, client] : clients_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), PollTimeoutMs(now)) < 0) {
        if (errno == EINTR) continue;
        return Status::Internal("gpud: poll: " + ErrnoText());
      }
      size_t k = 0;
      const bool accept_ready = (fds[k++].revents & POLLIN) != 0;
      if (stop_fd >= 0 && fds[k++].revents != 0) break;
      for (; k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        if (!ReadClient(fds[k].fd)) DropClient(fds[k].fd);
      }
      DropTimedOut();
      if (accept_ready) Accept();
    }
    Shutdown();
    return Status::Ok();
  }

 private:
  int Controllable() const {
    return static_cast<int>(std::count_if(gpus_.begin(), gpus_.end(),
                                          [](const GpuState& g) { return g.controllable; }));
  }

  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  bool TimeoutsOn() const { return options_.idle_timeout_s > 0; }
  Clock::duration Timeout() const {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.idle_timeout_s));
  }

  // Until the next connection times out or accepting resumes; -1: no such.
  int PollTimeoutMs(Clock::time_point now) const {
    Clock::time_point next = Clock::time_point::max();
    if (now < accept_paused_until_) next = accept_paused_until_;
    if (TimeoutsOn()) {
      for (const auto& [fd, client] : clients_) {
        if (client.timed()) next = std::min(next, client.since + Timeout());
      }
    }
    if (next == Clock::time_point::max()) return -1;
    if (next <= now) return 0;
    const double ms = std::ceil(std::chrono::duration<double, std::milli>(next - now).count());
    return static_cast<int>(std::min(ms, 3600e3));
  }

  void DropTimedOut() {
    if (!TimeoutsOn()) return;
    const Clock::time_point now = Clock::now();
    std::vector<int> expired;
    for (const auto& [fd, client] : clients_) {
      if (client.timed() && now - client.since >= Timeout()) expired.push_back(fd);
    }
    for (int fd : expired) {
      const ClientState& client = clients_.at(fd);
      Log("process " + std::to_string(client.pid) + ": closing its connection, " +
          (client.answered ? "a request left unfinished" : "no request") + " for " +
          std::to_string(options_.idle_timeout_s) + " s");
      DropClient(fd);
    }
  }

  Status Listen() {
    const std::string& path = options_.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) {
      return Status::InvalidInput("socket path must be 1.." +
                                  std::to_string(sizeof addr.sun_path - 1) +
                                  " characters: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return Status::InvalidInput(path + " exists and is not a socket; choose another --socket");
      }
      const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const bool live = connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
      close(probe);
      if (live) return Status::Unavailable("another gpud is already serving " + path);
      unlink(path.c_str());  // stale socket of a gpud that died
    }
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return Status::Internal("gpud: socket: " + ErrnoText());
    // Created with no permissions for others, then opened to the mode asked
    // for: nobody can connect in between.
    const mode_t old_mask = umask(0177);
    const int bound = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    umask(old_mask);
    if (bound != 0) return Status::Internal("gpud: cannot bind " + path + ": " + ErrnoText());
    owns_path_ = true;
    if (!options_.socket_group.empty()) {
      const group* g = getgrnam(options_.socket_group.c_str());
      if (g == nullptr) return Status::InvalidInput("no such group: " + options_.socket_group);
      if (chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
        return Status::Internal("gpud: chgrp " + path + ": " + ErrnoText());
      }
    }
    if (chmod(path.c_str(), options_.socket_mode & 0777) != 0) {
      return Status::Internal("gpud: chmod " + path + ": " + ErrnoText());
    }
    if (listen(listen_fd_, 128) != 0) return Status::Internal("gpud: listen: " + ErrnoText());
    return Status::Ok();
  }

  void Accept() {
    // Non-blocking: a client that stops reading its replies must not stall gpud.
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The connection stays queued; polling the listening socket would
        // report it again at once (a busy loop), so accepting pauses instead.
        accept_paused_until_ = Clock::now() + kAcceptPause;
        if (!accept_failing_) {
          Log("cannot accept connections: " + ErrnoText() +
              "; serving the connected clients and retrying every " +
              std::to_string(kAcceptPause.count()) + " ms");
          accept_failing_ = true;
        }
      }
      return;
    }
    if (accept_failing_) {
      Log("accepting connections again");
      accept_failing_ = false;
    }
    ClientState client;
    client.since = Clock::now();
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      client.pid = cred.pid;
      client.uid = cred.uid;
    }
    clients_[fd] = std::move(client);
  }

  // False when the client is gone or misbehaved.
  bool ReadClient(int fd) {
    ClientState& client = clients_[fd];
    char chunk[4096];
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) return false;
    const bool was_empty = client.buffer.empty();
    client.buffer.append(chunk, static_cast<size_t>(n));
    bool handled = false;
    size_t newline;
    while ((newline = client.buffer.find('\n')) != std::string::npos) {
      handled = true;
      client.answered = true;
      std::string line = client.buffer.substr(0, newline);
      client.buffer.erase(0, newline + 1);
      const std::string reply = Dump(Handle(fd, line));
      // The socket is non-blocking: a reply that does not fit its buffer means
      // the client is not reading; it is dropped (and its GPUs restored)
      // rather than waited for.
      if (send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(reply.size())) {
        return false;
      }
    }
    // A new unfinished line starts its timeout (before the first complete
    // request the connection's own clock runs on).
    if (client.answered && !client.buffer.empty() && (handled || was_empty)) {
      client.since = Clock::now();
    }
    if (client.buffer.size() > kMaxLine) {
      const std::string reply = Dump(Fail("request line longer than 64 KiB"));
      (void)send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      return false;
    }
    return true;
  }

  static json Fail(const std::string& error) { return {{"ok", false}, {"error", error}}; }
  // A reply line; bytes that are not UTF-8 (echoed from a request) are replaced.
  static std::string Dump(const json& reply) { return JsonText(reply) + "\n"; }

  json GpuList() const {
    json list = json::array();
    for (size_t i = 0; i < gpus_.size(); ++i) {
      const GpuState& g = gpus_[i];
      list.push_back({{"index", i},
                      {"name", g.device->name()},
                      {"uuid", g.device->uuid()},
                      {"clocks_mhz", g.clocks},
                      {"controllable", g.controllable},
                      {"owner_pid", g.owner >= 0 ? clients_.at(g.owner).pid : 0},
                      {"locked_mhz", g.locked_mhz}});
    }
    return list;
  }

  json Handle(int fd, const std::string& line) {
    const json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!request.is_object()) return Fail("request is not a JSON object");
    const auto op_it = request.find("op");
    if (op_it == request.end() || !op_it->is_string()) return Fail("missing string field \"op\"");
    const std::string op = *op_it;
    if (op == "hello") {
      return {{"ok", true}, {"protocol", 1}, {"backend", backend_.name()}, {"gpus", GpuList()}};
    }
    if (op == "status") return {{"ok", true}, {"gpus", GpuList()}};
    const auto gpu_it = request.find("gpu");
    if (gpu_it == request.end() || !gpu_it->is_number_integer()) {
      return Fail("missing integer field \"gpu\"");
    }
    const int64_t index = *gpu_it;
    if (index < 0 || index >= static_cast<int64_t>(gpus_.size())) {
      return Fail("no GPU " + std::to_string(index) + " (this machine has " +
                  std::to_string(gpus_.size()) + ")");
    }
    GpuState& gpu = gpus_[static_cast<size_t>(index)];
    if (!gpu.controllable) {
      return Fail("GPU " + std::to_string(index) + " is not one this gpud may control (--gpus)");
    }
    if (gpu.owner >= 0 && gpu.owner != fd) {
      return Fail("GPU " + std::to_string(index) + " is held by process " +
                  std::to_string(clients_.at(gpu.owner).pid));
    }
    const ClientState& client = clients_.at(fd);
    const std::string who =
        "process " + std::to_string(client.pid) + " (uid " + std::to_string(client.uid) + ")";
    if (op == "lock_sm") {
      const auto mhz_it = request.find("mhz");
      if (mhz_it == request.end() || !mhz_it->is_number_integer()) {
        return Fail("missing integer field \"mhz\"");
      }
      const int64_t mhz = *mhz_it;
      if (std::find(gpu.clocks.begin(), gpu.clocks.end(), mhz) == gpu.clocks.end()) {
        return Fail(std::to_string(mhz) + " MHz is not a supported SM clock of GPU " +
                    std::to_string(index));
      }
      Status s = gpu.device->LockSmClock(static_cast<int>(mhz));
      if (!s.ok()) return Fail(s.message());
      if (gpu.owner != fd) Log(who + " locked GPU " + std::to_string(index));
      gpu.owner = fd;
      gpu.locked_mhz = static_cast<int>(mhz);
      return {{"ok", true}};
    }
    if (op == "reset_sm") {
      Status s = gpu.device->ResetSmClock();
      if (!s.ok()) return Fail(s.message());
      gpu.locked_mhz = 0;
      Release(gpu, fd, who);
      return {{"ok", true}};
    }
    if (op == "lock_memory_max") {
      Status s = gpu.device->LockMemoryClockMax();
      if (!s.ok()) return Fail(s.message());
      gpu.owner = fd;
      gpu.memory_locked = true;
      return {{"ok", true}};
    }
    if (op == "reset_memory") {
      Status s = gpu.device->ResetMemoryClock();
      if (!s.ok()) return Fail(s.message());
      gpu.memory_locked = false;
      Release(gpu, fd, who);
      return {{"ok", true}};
    }
    return Fail("unknown op \"" + op + "\"");
  }

  void Release(GpuState& gpu, int fd, const std::string& who) {
    if (gpu.owner == fd && gpu.locked_mhz == 0 && !gpu.memory_locked) {
      gpu.owner = -1;
      Log(who + " released GPU " + std::to_string(&gpu - gpus_.data()));
    }
  }

  // Restores the defaults of every GPU the client held.
  void RestoreOwnedBy(int fd, const std::string& why) {
    for (size_t i = 0; i < gpus_.size(); ++i) {
      GpuState& gpu = gpus_[i];
      if (gpu.owner != fd) continue;
      Status sm = gpu.device->ResetSmClock();
      Status memory = gpu.memory_locked ? gpu.device->ResetMemoryClock() : Status::Ok();
      gpu.owner = -1;
      gpu.locked_mhz = 0;
      gpu.memory_locked = false;
      if (sm.ok() && memory.ok()) {
        Log(why + ": restored default clocks of GPU " + std::to_string(i));
      } else {
        Log(why + ": FAILED to restore GPU " + std::to_string(i) + ": " +
            (sm.ok() ? memory.message() : sm.message()));
      }
    }
  }

  void DropClient(int fd) {
    const ClientState& client = clients_.at(fd);
    RestoreOwnedBy(fd, "process " + std::to_string(client.pid) + " went away");
    close(fd);
    clients_.erase(fd);
  }

  void Shutdown() {
    for (auto& [fd, client] : clients_) {
      RestoreOwnedBy(fd, "gpud stopping");
      close(fd);
    }
    clients_.clear();
    Log("stopped");
  }

 public:
  ~Gpud() {
    for (auto& [fd, client] : clients_) close(fd);
    if (listen_fd_ >= 0) close(listen_fd_);
    if (owns_path_) unlink(options_.socket_path.c_str());
  }

 private:
  Backend& backend_;
  const GpudOptions& options_;
  std::vector<GpuState> gpus_;
  std::map<int, ClientState> clients_;
  int listen_fd_ = -1;
  bool owns_path_ = false;
  Clock::time_point accept_paused_until_;  // accepting resumes then
  bool accept_failing_ = false;            // logged; cleared by the next accept
};

}  // namespace

Status RunGpud(Backend& backend, const GpudOptions& options, int stop_fd) {
  Gpud gpud(backend, options);
  if (Status s = gpud.Init(); !s.ok()) return s;
  return gpud.Serve(stop_fd);
}

}  // namespace perseus::gpu
