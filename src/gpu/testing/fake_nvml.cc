// A stand-in libnvidia-ml.so.1 for tests: the NVML functions Perseus calls,
// with scripted behaviour. Configured by environment variables, read at
// nvmlInit_v2:
//   FAKE_NVML_GPUS=N          number of GPUs (default 2)
//   FAKE_NVML_LOG=PATH        every call appended as one line
//                             "<pid> <function> <arguments> -> <return code>"
//                             (written with O_APPEND, so it survives a killed process)
//   FAKE_NVML_FAIL=fn=code,.. make these functions return this NVML error
//   FAKE_NVML_NO_ENERGY=1     no energy counter (NVML_ERROR_NOT_SUPPORTED)
//   FAKE_NVML_ROOT_ONLY=1     clock changes by a process whose effective uid is
//                             not 0 return NVML_ERROR_NO_PERMISSION, as on a
//                             real GPU without a granted clock restriction
// GPU i has UUID GPU-fake0000-0000-0000-0000-<i, 12 digits> and PCI bus id
// 00000000:<0x10 + i, 2 hex digits>:00.0.
// Each GPU supports memory clocks 1593 and 1215 MHz; SM clocks 1410..210 MHz in
// 15 MHz steps at 1593, and only 1410/1200/1000 at 1215. Power follows the SM
// clock; the energy counter integrates it over real time.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "src/gpu/nvml_api.h"

namespace {

struct FakeGpu {
  int index = 0;
  unsigned locked_min = 0, locked_max = 0;  // 0: not locked
  unsigned memory_locked = 0;
  double energy_mj = 1.0e6;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
};

constexpr int kMaxGpus = 16;
std::mutex g_mutex;
FakeGpu g_gpus[kMaxGpus];
int g_count = 0;
bool g_initialised = false;
bool g_no_energy = false;
bool g_root_only = false;
std::map<std::string, int> g_failures;

void Log(const std::string& line) {
  const char* path = std::getenv("FAKE_NVML_LOG");
  if (path == nullptr || *path == '\0') return;
  const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = std::to_string(getpid()) + " " + line + "\n";
  [[maybe_unused]] ssize_t n = write(fd, text.data(), text.size());
  close(fd);
}

nvmlReturn_t Done(const std::string& call, nvmlReturn_t rc) {
  Log(call + " -> " + std::to_string(rc));
  return rc;
}

// The scripted failure of `fn`, if any; with FAKE_NVML_ROOT_ONLY, clock
// changes (Set*/Reset* functions) by a non-root caller.
bool Injected(const char* fn, nvmlReturn_t* rc) {
  if (g_root_only && geteuid() != 0 &&
      (std::strncmp(fn, "nvmlDeviceSet", 13) == 0 ||
       std::strncmp(fn, "nvmlDeviceReset", 15) == 0)) {
    *rc = NVML_ERROR_NO_PERMISSION;
    return true;
  }
  auto it = g_failures.find(fn);
  if (it == g_failures.end()) return false;
  *rc = it->second;
  return true;
}

void ReadConfig() {
  const char* gpus = std::getenv("FAKE_NVML_GPUS");
  g_count = gpus != nullptr ? std::atoi(gpus) : 2;
  if (g_count < 0) g_count = 0;
  if (g_count > kMaxGpus) g_count = kMaxGpus;
  const char* no_energy = std::getenv("FAKE_NVML_NO_ENERGY");
  g_no_energy = no_energy != nullptr && std::strcmp(no_energy, "1") == 0;
  const char* root_only = std::getenv("FAKE_NVML_ROOT_ONLY");
  g_root_only = root_only != nullptr && std::strcmp(root_only, "1") == 0;
  g_failures.clear();
  if (const char* fail = std::getenv("FAKE_NVML_FAIL"); fail != nullptr) {
    std::string spec = fail;
    size_t start = 0;
    while (start < spec.size()) {
      size_t end = spec.find(',', start);
      if (end == std::string::npos) end = spec.size();
      const std::string item = spec.substr(start, end - start);
      const size_t eq = item.find('=');
      if (eq != std::string::npos)
        g_failures[item.substr(0, eq)] = std::atoi(item.c_str() + eq + 1);
      start = end + 1;
    }
  }
  for (int i = 0; i < kMaxGpus; ++i) {
    g_gpus[i] = FakeGpu{};
    g_gpus[i].index = i;
  }
}

unsigned SmClock(const FakeGpu& gpu) { return gpu.locked_max != 0 ? gpu.locked_max : 1410; }

double PowerMw(const FakeGpu& gpu) {
  const double f = SmClock(gpu) / 1410.0;
  return 60000.0 + 240000.0 * f * f;
}

void Advance(FakeGpu& gpu) {
  const auto now = std::chrono::steady_clock::now();
  gpu.energy_mj += PowerMw(gpu) * std::chrono::duration<double>(now - gpu.last).count();
  gpu.last = now;
}

// Checks initialisation and the handle; sets *gpu.
nvmlReturn_t Gpu(nvmlDevice_t device, FakeGpu** gpu) {
  if (!g_initialised) return NVML_ERROR_UNINITIALIZED;
  auto* g = reinterpret_cast<FakeGpu*>(device);
  if (g < g_gpus || g >= g_gpus + g_count) return NVML_ERROR_INVALID_ARGUMENT;
  *gpu = g;
  return NVML_SUCCESS;
}

std::string Id(nvmlDevice_t device) {
  auto* g = reinterpret_cast<FakeGpu*>(device);
  return (g >= g_gpus && g < g_gpus + kMaxGpus) ? std::to_string(g->index) : "?";
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) nvmlReturn_t nvmlInit_v2(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  ReadConfig();
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlInit_v2", &rc)) return Done("nvmlInit_v2", rc);
  g_initialised = true;
  return Done("nvmlInit_v2", NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlShutdown(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const bool was = g_initialised;
  g_initialised = false;
  return Done("nvmlShutdown", was ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED);
}

__attribute__((visibility("default"))) const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_UNINITIALIZED:
      return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NO_PERMISSION:
      return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST:
      return "GPU is lost";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
      return "RM has detected an NVML/RM version mismatch.";
    default:
      return "Unknown Error";
  }
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlSystemGetDriverVersion(char* version,
                                                                               unsigned length) {
  std::snprintf(version, length, "%s", "999.99-fake");
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) {
  std::lock_guard<std::mutex> lock(g_mutex);
  nvmlReturn_t rc = NVML_SUCCESS;
  if (!g_initialised) return Done("nvmlDeviceGetCount_v2", NVML_ERROR_UNINITIALIZED);
  if (Injected("nvmlDeviceGetCount_v2", &rc)) return Done("nvmlDeviceGetCount_v2", rc);
  *count = static_cast<unsigned>(g_count);
  return Done("nvmlDeviceGetCount_v2", NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(
    unsigned index, nvmlDevice_t* device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const std::string call = "nvmlDeviceGetHandleByIndex_v2 " + std::to_string(index);
  if (!g_initialised) return Done(call, NVML_ERROR_UNINITIALIZED);
  if (index >= static_cast<unsigned>(g_count)) return Done(call, NVML_ERROR_INVALID_ARGUMENT);
  *device = reinterpret_cast<nvmlDevice_t>(&g_gpus[index]);
  return Done(call, NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device,
                                                                      char* name, unsigned length) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  std::snprintf(name, length, "%s", "Fake NVIDIA A100-SXM4-80GB");
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device,
                                                                      char* uuid, unsigned length) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  std::snprintf(uuid, length, "GPU-fake0000-0000-0000-0000-%012d", gpu->index);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device,
                                                                            nvmlPciInfo_t* pci) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  *pci = nvmlPciInfo_t{};
  pci->domain = 0;
  pci->bus = 0x10 + static_cast<unsigned>(gpu->index);
  pci->device = 0;
  std::snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
  std::snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetSupportedMemoryClocks(
    nvmlDevice_t device, unsigned* count, unsigned* clocks) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  if (*count < 2) {
    *count = 2;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  clocks[0] = 1215;  // not sorted, as NVML does not promise an order
  clocks[1] = 1593;
  *count = 2;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetSupportedGraphicsClocks(
    nvmlDevice_t device, unsigned memory_mhz, unsigned* count, unsigned* clocks) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  const std::string call =
      "nvmlDeviceGetSupportedGraphicsClocks " + Id(device) + " " + std::to_string(memory_mhz);
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return Done(call, rc);
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceGetSupportedGraphicsClocks", &rc)) return Done(call, rc);
  unsigned n = 0;
  unsigned out[128];
  if (memory_mhz == 1593) {
    for (unsigned mhz = 1410; mhz >= 210; mhz -= 15) out[n++] = mhz;
  } else if (memory_mhz == 1215) {
    out[n++] = 1410;
    out[n++] = 1200;
    out[n++] = 1000;
  } else {
    return Done(call, NVML_ERROR_NOT_FOUND);
  }
  if (*count < n) {
    *count = n;
    return Done(call, NVML_ERROR_INSUFFICIENT_SIZE);
  }
  std::memcpy(clocks, out, n * sizeof(unsigned));
  *count = n;
  return Done(call, NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device,
                                                                           nvmlClockType_t type,
                                                                           unsigned* clock) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  if (type == NVML_CLOCK_SM || type == NVML_CLOCK_GRAPHICS) {
    *clock = SmClock(*gpu);
  } else if (type == NVML_CLOCK_MEM) {
    *clock = gpu->memory_locked != 0 ? gpu->memory_locked : 1593;
  } else {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(
    nvmlDevice_t device, unsigned long long* energy) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  if (g_no_energy) return NVML_ERROR_NOT_SUPPORTED;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceGetTotalEnergyConsumption", &rc)) return rc;
  Advance(*gpu);
  *energy = static_cast<unsigned long long>(gpu->energy_mj);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device,
                                                                            unsigned* power) {
  std::lock_guard<std::mutex> lock(g_mutex);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return rc;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceGetPowerUsage", &rc)) return rc;
  *power = static_cast<unsigned>(PowerMw(*gpu));
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceSetGpuLockedClocks(
    nvmlDevice_t device, unsigned min_mhz, unsigned max_mhz) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const std::string call = "nvmlDeviceSetGpuLockedClocks " + Id(device) + " " +
                           std::to_string(min_mhz) + " " + std::to_string(max_mhz);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return Done(call, rc);
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceSetGpuLockedClocks", &rc)) return Done(call, rc);
  if (min_mhz > max_mhz || max_mhz > 1410 || min_mhz < 210) {
    return Done(call, NVML_ERROR_INVALID_ARGUMENT);
  }
  Advance(*gpu);
  gpu->locked_min = min_mhz;
  gpu->locked_max = max_mhz;
  return Done(call, NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceResetGpuLockedClocks(
    nvmlDevice_t device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const std::string call = "nvmlDeviceResetGpuLockedClocks " + Id(device);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return Done(call, rc);
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceResetGpuLockedClocks", &rc)) return Done(call, rc);
  Advance(*gpu);
  gpu->locked_min = gpu->locked_max = 0;
  return Done(call, NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceSetMemoryLockedClocks(
    nvmlDevice_t device, unsigned min_mhz, unsigned max_mhz) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const std::string call = "nvmlDeviceSetMemoryLockedClocks " + Id(device) + " " +
                           std::to_string(min_mhz) + " " + std::to_string(max_mhz);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return Done(call, rc);
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceSetMemoryLockedClocks", &rc)) return Done(call, rc);
  gpu->memory_locked = max_mhz;
  return Done(call, NVML_SUCCESS);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceResetMemoryLockedClocks(
    nvmlDevice_t device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const std::string call = "nvmlDeviceResetMemoryLockedClocks " + Id(device);
  FakeGpu* gpu = nullptr;
  if (nvmlReturn_t rc = Gpu(device, &gpu); rc != NVML_SUCCESS) return Done(call, rc);
  nvmlReturn_t rc = NVML_SUCCESS;
  if (Injected("nvmlDeviceResetMemoryLockedClocks", &rc)) return Done(call, rc);
  gpu->memory_locked = 0;
  return Done(call, NVML_SUCCESS);
}

}  // extern "C"
