#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "nlohmann/json.hpp"
#include "perseus/gpu/gpud.h"

namespace perseus::gpu {
namespace {

using nlohmann::json;

constexpr int kReplyTimeoutS = 30;

Result<std::vector<GpudGpuInfo>> ParseGpus(const std::string& reply) {
  const json j = json::parse(reply, nullptr, false);
  if (!j.is_object() || !j.contains("gpus") || !j["gpus"].is_array()) {
    return Status::Internal("gpud sent a malformed reply: " + reply.substr(0, 200));
  }
  std::vector<GpudGpuInfo> out;
  try {
    for (const json& g : j["gpus"]) {
      GpudGpuInfo info;
      info.index = g.at("index").get<int>();
      info.name = g.at("name").get<std::string>();
      info.uuid = g.at("uuid").get<std::string>();
      info.clocks_mhz = g.at("clocks_mhz").get<std::vector<int>>();
      info.controllable = g.at("controllable").get<bool>();
      info.owner_pid = g.at("owner_pid").get<int>();
      info.locked_mhz = g.at("locked_mhz").get<int>();
      out.push_back(std::move(info));
    }
  } catch (const json::exception& e) {
    return Status::Internal(std::string("gpud sent a malformed GPU list: ") + e.what());
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<GpudClient>> GpudClient::Connect(const std::string& socket_path) {
  std::shared_ptr<GpudClient> client(new GpudClient(socket_path));
  std::lock_guard<std::mutex> lock(client->mutex_);
  if (Status s = client->ConnectLocked(); !s.ok()) return s;
  return client;
}

GpudClient::~GpudClient() {
  if (fd_ >= 0) close(fd_);
}

Status GpudClient::ConnectLocked() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof addr.sun_path) {
    return Status::InvalidInput("gpud socket path too long or empty: " + path_);
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Internal(std::string("socket: ") + std::strerror(errno));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    switch (err) {
      case ENOENT:
        return Status::Unavailable("gpud is not running: no socket at " + path_ +
                                   " (start `perseus gpud --socket " + path_ + "` as root)");
      case EACCES:
      case EPERM:
        return Status::PermissionDenied(
            "no permission to connect to gpud at " + path_ +
            " (the socket's mode and group decide who may: see `perseus gpud --help`)");
      case ECONNREFUSED:
        return Status::Unavailable("nothing is listening on " + path_ + " (gpud stopped?)");
      default:
        return Status::Unavailable("cannot connect to gpud at " + path_ + ": " +
                                   std::strerror(err));
    }
  }
  timeval timeout{kReplyTimeoutS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  fd_ = fd;
  return Status::Ok();
}

Result<std::string> GpudClient::Call(const std::string& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ < 0 || attempt > 0) {
      if (Status s = ConnectLocked(); !s.ok()) return s;
    }
    const std::string line = request + "\n";
    if (send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
      continue;  // gpud went away: reconnect once
    }
    for (;;) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string reply = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return reply;
      }
      char chunk[4096];
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        close(fd_);
        fd_ = -1;
        return Status::Unavailable("gpud at " + path_ + " did not answer within " +
                                   std::to_string(kReplyTimeoutS) + " s");
      }
      break;  // closed: reconnect once
    }
  }
  return Status::Unavailable("lost the connection to gpud at " + path_);
}

Status GpudClient::Simple(const std::string& request) {
  auto reply = Call(request);
  if (!reply.ok()) return reply.status();
  const json j = json::parse(*reply, nullptr, false);
  if (!j.is_object() || !j.contains("ok")) {
    return Status::Internal("gpud sent a malformed reply: " + reply->substr(0, 200));
  }
  if (j["ok"] == true) return Status::Ok();
  const std::string error = j.value("error", std::string("unknown error"));
  return Status::InvalidInput("gpud: " + error);
}

Result<std::vector<GpudGpuInfo>> GpudClient::Hello() {
  auto reply = Call(R"({"op":"hello"})");
  if (!reply.ok()) return reply.status();
  return ParseGpus(*reply);
}

Result<std::vector<GpudGpuInfo>> GpudClient::GpuStatus() {
  auto reply = Call(R"({"op":"status"})");
  if (!reply.ok()) return reply.status();
  return ParseGpus(*reply);
}

Status GpudClient::LockSmClock(int gpu, int mhz) {
  return Simple(json{{"op", "lock_sm"}, {"gpu", gpu}, {"mhz", mhz}}.dump());
}
Status GpudClient::ResetSmClock(int gpu) {
  return Simple(json{{"op", "reset_sm"}, {"gpu", gpu}}.dump());
}
Status GpudClient::LockMemoryClockMax(int gpu) {
  return Simple(json{{"op", "lock_memory_max"}, {"gpu", gpu}}.dump());
}
Status GpudClient::ResetMemoryClock(int gpu) {
  return Simple(json{{"op", "reset_memory"}, {"gpu", gpu}}.dump());
}

}  // namespace perseus::gpu
