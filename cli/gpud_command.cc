// `perseus gpud`: the privileged clock daemon (see include/perseus/gpu/gpud.h).
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>

#include "cli/commands.h"
#include "cli/gpu_backend.h"
#include "cli/job.h"
#include "perseus/gpu/gpud.h"

namespace perseus::cli {
namespace {

struct GpudArgs {
  BackendArgs backend;
  gpu::GpudOptions options;
  std::string mode = "0660";
  bool no_reset_on_start = false;
};

int g_stop_pipe[2] = {-1, -1};

void OnStopSignal(int) {
  const char byte = 1;
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &byte, 1);
}

void Log(const std::string& line) { LogLine("gpud", line); }

int RunGpudCommand(GpudArgs& args) {
  char* end = nullptr;
  const unsigned long mode = std::strtoul(args.mode.c_str(), &end, 8);
  if (args.mode.empty() || *end != '\0' || mode > 0777) {
    return ReportError(
        Status::InvalidInput("--mode must be octal permissions like 0660, got " + args.mode));
  }
  args.options.socket_mode = static_cast<unsigned>(mode);
  args.options.reset_on_start = !args.no_reset_on_start;
  args.options.log = Log;
  auto backend = OpenCommandBackend(args.backend);
  if (!backend.ok()) return ReportError(backend.status());
  if (pipe2(g_stop_pipe, O_CLOEXEC) != 0) return ReportError(Status::Internal("pipe failed"));
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Status served = gpu::RunGpud(**backend, args.options, g_stop_pipe[0]);
  if (!served.ok()) return ReportError(served);
  return 0;
}

}  // namespace

void RegisterGpud(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<GpudArgs>();
  CLI::App* cmd = app->add_subcommand(
      "gpud",
      "Run the clock daemon: serves frequency controllers over a Unix socket, applies their clock "
      "requests, and restores a GPU's default clocks as soon as the process that locked it "
      "disconnects or dies. Run it as root; training processes then need no privilege. Who may "
      "connect is decided by the socket's --mode and --group.");
  AddBackendOptions(cmd, &args->backend, "nvml", false);
  cmd->add_option("--socket", args->options.socket_path, "Unix socket path")->capture_default_str();
  cmd->add_option("--gpus", args->options.gpus,
                  "GPUs clients may control (e.g. --gpus 0,1,2) [default: all]")
      ->delimiter(',');
  cmd->add_option("--mode", args->mode, "Socket permissions (octal)")->capture_default_str();
  cmd->add_option("--group", args->options.socket_group,
                  "Give the socket to this group (with --mode 0660: its members may connect)");
  cmd->add_option("--idle-timeout", args->options.idle_timeout_s,
                  "Close a connection that has not finished a request this many seconds after "
                  "connecting or after starting the request (0: never); clients holding GPUs "
                  "are never closed for being idle")
      ->capture_default_str();
  cmd->add_flag("--no-reset-on-start", args->no_reset_on_start,
                "Do not restore the GPUs' default clocks at start");
  cmd->callback([args, exit_code] { *exit_code = RunGpudCommand(*args); });
}

}  // namespace perseus::cli
