// gpud: the privileged side of the GPU runtime. One daemon per machine, run as
// root, holds the right to change clocks; training processes (no root) ask it
// over a Unix socket. It restores a GPU's default clocks as soon as the client
// that locked it disconnects, whether it exited, crashed or was killed -9.
//
// Protocol: one JSON object per line each way, on a SOCK_STREAM Unix socket.
//   {"op":"hello"}                        -> {"ok":true,"protocol":1,"backend":..,"gpus":[..]}
//   {"op":"lock_sm","gpu":G,"mhz":F}      -> {"ok":true}   (F must be a supported clock)
//   {"op":"reset_sm","gpu":G}             -> {"ok":true}   (also releases G)
//   {"op":"lock_memory_max","gpu":G}      -> {"ok":true}
//   {"op":"reset_memory","gpu":G}         -> {"ok":true}
//   {"op":"status"}                       -> {"ok":true,"gpus":[{"index","owner_pid",..}]}
// Failures: {"ok":false,"error":"..."}. A client owns a GPU from its first lock
// until it resets both clocks or disconnects; another client's lock of an owned
// GPU is refused.
//
// Timeouts (GpudOptions::idle_timeout_s): being idle never costs a client its
// connection, nor its GPUs: a client that has sent complete requests may stay
// connected and silent as long as it likes. gpud closes only a connection that
// has not completed its first request within the timeout of connecting, or
// that has left a request line unfinished for longer than the timeout (counted
// from the line's first byte, so trickling bytes does not extend it). Closing
// it is a disconnect: the GPUs it held are restored.
//
// Out of file descriptors (EMFILE/ENFILE), gpud stops accepting for 100 ms at
// a time (logging once per episode) while it goes on serving its connected
// clients; waiting connections are accepted once descriptors free up.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/gpu/device.h"

namespace perseus::gpu {

struct GpudOptions {
  std::string socket_path = "/run/perseus/gpud.sock";
  std::vector<int> gpus;        // GPUs clients may control; empty: all
  unsigned socket_mode = 0660;  // who may connect: owner and group
  std::string socket_group;     // chgrp the socket to this group (e.g. "perseus")
  bool reset_on_start = true;   // restore defaults first (a previous gpud may have died)
  // Seconds a connection may take to send its first complete request, and any
  // request line to be finished (see the Timeouts rule above); <= 0: never.
  double idle_timeout_s = 60;
  std::function<void(const std::string&)> log;  // one line per event; may be empty
};

// Serves until `stop_fd` becomes readable (or is closed); then restores every
// owned GPU's clocks and removes the socket.
Status RunGpud(Backend& backend, const GpudOptions& options, int stop_fd);

struct GpudGpuInfo {
  int index = 0;
  std::string name, uuid;
  std::vector<int> clocks_mhz;  // supported SM clocks, highest first
  bool controllable = false;    // gpud was told it may control it
  int owner_pid = 0;            // 0: nobody holds it
  int locked_mhz = 0;           // 0: default
};

// One connection to gpud; thread-safe. The connection is the lease: closing it
// (or dying) makes gpud restore the clocks this client locked.
class GpudClient {
 public:
  static Result<std::shared_ptr<GpudClient>> Connect(const std::string& socket_path);
  ~GpudClient();

  Result<std::vector<GpudGpuInfo>> Hello();
  Result<std::vector<GpudGpuInfo>> GpuStatus();
  Status LockSmClock(int gpu, int mhz);
  Status ResetSmClock(int gpu);
  Status LockMemoryClockMax(int gpu);
  Status ResetMemoryClock(int gpu);
  const std::string& socket_path() const { return path_; }

 private:
  explicit GpudClient(std::string path) : path_(std::move(path)) {}
  Status ConnectLocked();
  // Sends one request line, returns the reply line. Reconnects once if gpud
  // went away (a restarted gpud has restored the clocks; the request redoes them).
  Result<std::string> Call(const std::string& request);
  Status Simple(const std::string& request);

  std::string path_;
  std::mutex mutex_;
  int fd_ = -1;
  std::string buffer_;
};

// A GPU held through gpud, for a FrequencyController.
class RemoteGpu final : public ClockTarget {
 public:
  RemoteGpu(std::shared_ptr<GpudClient> client, int gpu) : client_(std::move(client)), gpu_(gpu) {}
  Status LockSmClock(int mhz) override { return client_->LockSmClock(gpu_, mhz); }
  Status ResetSmClock() override { return client_->ResetSmClock(gpu_); }
  std::string Describe() const override {
    return "GPU " + std::to_string(gpu_) + " via gpud at " + client_->socket_path();
  }

 private:
  std::shared_ptr<GpudClient> client_;
  int gpu_;
};

}  // namespace perseus::gpu
