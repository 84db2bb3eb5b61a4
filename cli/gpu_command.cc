// `perseus gpu info | reset | lock`: look at GPUs and their clocks, restore
// default clocks, or hold a clock (directly, or through gpud).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/gpu_backend.h"
#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/gpu/frequency_controller.h"
#include "perseus/gpu/gpud.h"

namespace perseus::cli {
namespace {

using nlohmann::json;

struct GpuArgs {
  BackendArgs backend;
  std::string gpud_socket;  // non-empty: go through gpud
  int gpu = -1;             // -1: all
  int mhz = 0;
  double seconds = 0;  // lock: 0 = until a signal
  bool json = false;
};

std::string ClockRange(const std::vector<int>& clocks) {
  if (clocks.empty()) return "-";
  return std::to_string(clocks.size()) + " (" + std::to_string(clocks.back()) + ".." +
         std::to_string(clocks.front()) + ")";
}

int RunInfoViaGpud(const GpuArgs& args) {
  auto client = gpu::GpudClient::Connect(args.gpud_socket);
  if (!client.ok()) return ReportError(client.status());
  auto gpus = (*client)->Hello();
  if (!gpus.ok()) return ReportError(gpus.status());
  json list = json::array();
  for (const auto& g : *gpus) {
    list.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"supported_sm_clocks_mhz", g.clocks_mhz},
                    {"controllable", g.controllable},
                    {"owner_pid", g.owner_pid},
                    {"locked_sm_clock_mhz", g.locked_mhz}});
  }
  if (args.json) {
    std::cout << json{{"gpud", args.gpud_socket}, {"gpus", list}}.dump(2) << std::endl;
    return 0;
  }
  std::printf("gpud at %s\n%-4s %-30s %-40s %-14s %-11s %s\n", args.gpud_socket.c_str(), "GPU",
              "Name", "UUID", "SM clocks", "Control", "Held by");
  for (const auto& g : *gpus) {
    const std::string held =
        g.owner_pid == 0
            ? "-"
            : "pid " + std::to_string(g.owner_pid) +
                  (g.locked_mhz != 0 ? " at " + std::to_string(g.locked_mhz) + " MHz" : "");
    std::printf("%-4d %-30s %-40s %-14s %-11s %s\n", g.index, g.name.c_str(), g.uuid.c_str(),
                ClockRange(g.clocks_mhz).c_str(), g.controllable ? "yes" : "no", held.c_str());
  }
  return 0;
}

int RunInfo(const GpuArgs& args) {
  if (!args.gpud_socket.empty()) return RunInfoViaGpud(args);
  auto backend = OpenCommandBackend(args.backend);
  if (!backend.ok()) return ReportError(backend.status());
  gpu::Backend& b = **backend;
  json list = json::array();
  std::vector<std::string> warnings;
  for (int i = 0; i < b.device_count(); ++i) {
    if (args.gpu >= 0 && i != args.gpu) continue;
    gpu::Device& d = b.device(i);
    json entry = {{"index", i}, {"name", d.name()}, {"uuid", d.uuid()}};
    auto note = [&](const std::string& field, const Status& s) {
      entry[field] = nullptr;
      warnings.push_back(s.message());
    };
    if (auto clocks = d.SupportedSmClocks(); clocks.ok()) {
      entry["supported_sm_clocks_mhz"] = *clocks;
    } else {
      note("supported_sm_clocks_mhz", clocks.status());
    }
    if (auto mhz = d.CurrentSmClock(); mhz.ok()) {
      entry["sm_clock_mhz"] = *mhz;
    } else {
      note("sm_clock_mhz", mhz.status());
    }
    if (auto mj = d.EnergyMj(); mj.ok()) {
      entry["energy_mj"] = *mj;
    } else {
      note("energy_mj", mj.status());
    }
    if (auto w = d.PowerW(); w.ok()) {
      entry["power_w"] = *w;
    } else {
      note("power_w", w.status());
    }
    list.push_back(entry);
  }
  if (args.gpu >= 0) {
    if (auto d = gpu::DeviceAt(b, args.gpu); !d.ok()) return ReportError(d.status());
  }
  for (const std::string& w : warnings) std::fprintf(stderr, "perseus: warning: %s\n", w.c_str());
  if (args.json) {
    std::cout << json{{"backend", b.name()}, {"version", b.version()}, {"gpus", list}}.dump(2)
              << std::endl;
    return 0;
  }
  std::printf("%s backend, %s\n%-4s %-30s %-40s %-10s %-18s %12s %10s\n", b.name().c_str(),
              b.version().c_str(), "GPU", "Name", "UUID", "SM clock", "SM clocks (MHz)",
              "Energy (J)", "Power (W)");
  for (const json& g : list) {
    const std::vector<int> clocks = g["supported_sm_clocks_mhz"].is_null()
                                        ? std::vector<int>{}
                                        : g["supported_sm_clocks_mhz"].get<std::vector<int>>();
    const std::string mhz =
        g["sm_clock_mhz"].is_null() ? "?" : std::to_string(g["sm_clock_mhz"].get<int>());
    char energy[32] = "?", power[32] = "?";
    if (!g["energy_mj"].is_null()) {
      std::snprintf(energy, sizeof energy, "%.1f", g["energy_mj"].get<double>() / 1000.0);
    }
    if (!g["power_w"].is_null())
      std::snprintf(power, sizeof power, "%.1f", g["power_w"].get<double>());
    std::printf("%-4d %-30s %-40s %-10s %-18s %12s %10s\n", g["index"].get<int>(),
                g["name"].get<std::string>().c_str(), g["uuid"].get<std::string>().c_str(),
                mhz.c_str(), ClockRange(clocks).c_str(), energy, power);
  }
  return 0;
}

int RunReset(const GpuArgs& args) {
  if (!args.gpud_socket.empty()) {
    auto client = gpu::GpudClient::Connect(args.gpud_socket);
    if (!client.ok()) return ReportError(client.status());
    auto gpus = (*client)->Hello();
    if (!gpus.ok()) return ReportError(gpus.status());
    int done = 0;
    for (const auto& g : *gpus) {
      if ((args.gpu >= 0 && g.index != args.gpu) || (args.gpu < 0 && !g.controllable)) continue;
      if (Status s = (*client)->ResetSmClock(g.index); !s.ok()) return ReportError(s);
      (void)(*client)->ResetMemoryClock(g.index);
      std::printf("GPU %d: default clocks restored\n", g.index);
      ++done;
    }
    if (done == 0) return ReportError(Status::InvalidInput("no GPU to reset"));
    return 0;
  }
  auto backend = OpenCommandBackend(args.backend);
  if (!backend.ok()) return ReportError(backend.status());
  if (args.gpu >= 0) {
    if (auto d = gpu::DeviceAt(**backend, args.gpu); !d.ok()) return ReportError(d.status());
  }
  for (int i = 0; i < (*backend)->device_count(); ++i) {
    if (args.gpu >= 0 && i != args.gpu) continue;
    gpu::Device& d = (*backend)->device(i);
    if (Status s = d.ResetSmClock(); !s.ok()) return ReportError(s);
    Status memory = d.ResetMemoryClock();
    if (!memory.ok() && memory.code() != StatusCode::kNotFound) return ReportError(memory);
    std::printf("GPU %d: default clocks restored\n", i);
  }
  return 0;
}

int RunLock(const GpuArgs& args) {
  std::shared_ptr<gpu::GpudClient> client;
  std::unique_ptr<gpu::Backend> backend;
  std::unique_ptr<gpu::ClockTarget> remote;
  gpu::ClockTarget* target = nullptr;
  if (!args.gpud_socket.empty()) {
    auto connected = gpu::GpudClient::Connect(args.gpud_socket);
    if (!connected.ok()) return ReportError(connected.status());
    client = *connected;
    remote = std::make_unique<gpu::RemoteGpu>(client, args.gpu);
    target = remote.get();
  } else {
    auto opened = OpenCommandBackend(args.backend);
    if (!opened.ok()) return ReportError(opened.status());
    backend = std::move(opened).value();
    auto device = gpu::DeviceAt(*backend, args.gpu);
    if (!device.ok()) return ReportError(device.status());
    // A clock the GPU does not support is refused, as gpud refuses it (a
    // driver would round it to one it has, silently).
    auto clocks = (*device)->SupportedSmClocks();
    if (!clocks.ok()) return ReportError(clocks.status());
    if (std::find(clocks->begin(), clocks->end(), args.mhz) == clocks->end()) {
      int nearest = clocks->empty() ? 0 : clocks->front();
      for (int c : *clocks) {
        if (std::abs(c - args.mhz) < std::abs(nearest - args.mhz)) nearest = c;
      }
      return ReportError(Status::InvalidInput(
          "--mhz " + std::to_string(args.mhz) + " is not a supported SM clock of GPU " +
          std::to_string(args.gpu) + " (it has " + std::to_string(clocks->size()) + ", " +
          (clocks->empty()
               ? std::string("none")
               : std::to_string(clocks->back()) + ".." + std::to_string(clocks->front()) + " MHz") +
          "; the nearest is " + std::to_string(nearest) + " MHz; see perseus gpu info)"));
    }
    target = *device;
  }
  gpu::FrequencyController controller(*target);
  controller.Set(args.mhz);
  if (Status s = controller.Flush(); !s.ok()) return ReportError(s);
  std::printf("locked %s at %d MHz; %s restores the default clocks\n", target->Describe().c_str(),
              args.mhz, args.seconds > 0 ? "exiting" : "Ctrl-C (SIGINT) or SIGTERM");
  std::fflush(stdout);
  if (args.seconds > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(args.seconds));
    return 0;  // the controller's destructor restores the clocks
  }
  for (;;) pause();  // the controller's signal watcher restores the clocks
}

}  // namespace

void RegisterGpu(CLI::App* app, int* exit_code) {
  CLI::App* gpu =
      app->add_subcommand("gpu", "Look at GPUs and their clocks; restore or hold clocks");
  gpu->require_subcommand(1);

  auto info_args = std::make_shared<GpuArgs>();
  CLI::App* info = gpu->add_subcommand(
      "info", "List GPUs: name, UUID, current and supported SM clocks, energy counter, power");
  AddBackendOptions(info, &info_args->backend, "nvml", false);
  info->add_option("--gpu", info_args->gpu, "Only this GPU");
  info->add_option("--gpud", info_args->gpud_socket,
                   "Ask gpud at this socket instead (shows which GPUs are held, by whom)");
  info->add_flag("--json", info_args->json, "Machine-readable output");
  info->callback([info_args, exit_code] { *exit_code = RunInfo(*info_args); });

  auto reset_args = std::make_shared<GpuArgs>();
  CLI::App* reset = gpu->add_subcommand(
      "reset", "Restore the default SM and memory clocks (needs root, or --gpud)");
  AddBackendOptions(reset, &reset_args->backend, "nvml", false);
  reset->add_option("--gpu", reset_args->gpu, "Only this GPU [default: all]");
  reset->add_option("--gpud", reset_args->gpud_socket, "Ask gpud at this socket to do it");
  reset->callback([reset_args, exit_code] { *exit_code = RunReset(*reset_args); });

  auto lock_args = std::make_shared<GpuArgs>();
  CLI::App* lock = gpu->add_subcommand(
      "lock",
      "Hold a GPU's SM clock until interrupted (or --seconds), then restore it; through gpud "
      "the clock is restored even if this process is killed -9");
  AddBackendOptions(lock, &lock_args->backend, "nvml", false);
  lock->add_option("--gpu", lock_args->gpu, "GPU index")->required()->check(CLI::NonNegativeNumber);
  lock->add_option("--mhz", lock_args->mhz, "SM clock in MHz")
      ->required()
      ->check(CLI::PositiveNumber);
  lock->add_option("--gpud", lock_args->gpud_socket, "Go through gpud at this socket");
  lock->add_option("--seconds", lock_args->seconds, "Hold for this long, then restore and exit")
      ->check(CLI::NonNegativeNumber);
  lock->callback([lock_args, exit_code] { *exit_code = RunLock(*lock_args); });
}

}  // namespace perseus::cli
