#include "perseus/gpu/nvml_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "src/gpu/nvml_api.h"

namespace perseus::gpu {
namespace {

// Every NVML entry point Perseus calls, resolved from the loaded library.
// Optional ones (added to NVML later than the others) may be null.
struct NvmlLibrary {
  void* handle = nullptr;
  std::string path;
  decltype(&nvmlInit_v2) init = nullptr;
  decltype(&nvmlShutdown) shutdown = nullptr;
  decltype(&nvmlErrorString) error_string = nullptr;
  decltype(&nvmlSystemGetDriverVersion) driver_version = nullptr;  // optional
  decltype(&nvmlDeviceGetCount_v2) get_count = nullptr;
  decltype(&nvmlDeviceGetHandleByIndex_v2) get_handle = nullptr;
  decltype(&nvmlDeviceGetName) get_name = nullptr;
  decltype(&nvmlDeviceGetUUID) get_uuid = nullptr;
  decltype(&nvmlDeviceGetPciInfo_v3) pci_info = nullptr;  // optional
  decltype(&nvmlDeviceGetSupportedMemoryClocks) memory_clocks = nullptr;
  decltype(&nvmlDeviceGetSupportedGraphicsClocks) graphics_clocks = nullptr;
  decltype(&nvmlDeviceGetClockInfo) clock_info = nullptr;
  decltype(&nvmlDeviceGetTotalEnergyConsumption) total_energy = nullptr;  // optional
  decltype(&nvmlDeviceGetPowerUsage) power_usage = nullptr;
  decltype(&nvmlDeviceSetGpuLockedClocks) lock_gpu_clocks = nullptr;
  decltype(&nvmlDeviceResetGpuLockedClocks) reset_gpu_clocks = nullptr;
  decltype(&nvmlDeviceSetMemoryLockedClocks) lock_memory_clocks = nullptr;     // optional
  decltype(&nvmlDeviceResetMemoryLockedClocks) reset_memory_clocks = nullptr;  // optional
  bool initialised = false;

  ~NvmlLibrary() {
    if (initialised) shutdown();
    if (handle != nullptr) dlclose(handle);
  }

  std::string ErrorText(nvmlReturn_t rc) const {
    const char* text = error_string != nullptr ? error_string(rc) : nullptr;
    return std::string(text != nullptr ? text : "unknown error") + " (NVML error " +
           std::to_string(rc) + ")";
  }
};

template <typename Fn>
bool Resolve(NvmlLibrary& lib, const char* symbol, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(lib.handle, symbol));
  return *out != nullptr;
}

// What to do about an NVML failure, appended to its message.
std::string Advice(nvmlReturn_t rc, const char* function) {
  const std::string fn = function;
  switch (rc) {
    case NVML_ERROR_NO_PERMISSION:
      if (fn.find("Set") != std::string::npos || fn.find("Reset") != std::string::npos) {
        return ": changing GPU clocks needs root (or a granted clock restriction: nvidia-smi "
               "-acp UNRESTRICTED); run `perseus gpud` as root and let the training processes "
               "talk to it (--gpud SOCKET)";
      }
      return ": this user may not open the GPU device files (/dev/nvidia*)";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return ": the NVIDIA kernel driver is not loaded (nvidia-smi must work first)";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
      return ": libnvidia-ml and the loaded kernel driver differ in version (reboot or reload "
             "the driver after an upgrade)";
    case NVML_ERROR_GPU_IS_LOST:
      return ": the GPU fell off the bus or stopped responding";
    default:
      return "";
  }
}

Status NvmlStatus(const NvmlLibrary& lib, const char* function, nvmlReturn_t rc,
                  const std::string& where) {
  std::string message = std::string(function) + (where.empty() ? "" : " (" + where + ")") + ": " +
                        lib.ErrorText(rc) + Advice(rc, function);
  switch (rc) {
    case NVML_ERROR_NO_PERMISSION:
      return Status::PermissionDenied(std::move(message));
    case NVML_ERROR_DRIVER_NOT_LOADED:
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
    case NVML_ERROR_GPU_IS_LOST:
      return Status::Unavailable(std::move(message));
    case NVML_ERROR_INVALID_ARGUMENT:
      return Status::InvalidInput(std::move(message));
    case NVML_ERROR_NOT_SUPPORTED:
      return Status::NotFound(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

class NvmlDevice final : public Device {
 public:
  NvmlDevice(std::shared_ptr<NvmlLibrary> lib, nvmlDevice_t handle, int index, std::string name,
             std::string uuid, std::string pci_bus_id, double sample_interval_s)
      : lib_(std::move(lib)),
        handle_(handle),
        index_(index),
        name_(std::move(name)),
        uuid_(std::move(uuid)),
        pci_bus_id_(std::move(pci_bus_id)),
        sample_interval_s_(sample_interval_s) {}

  ~NvmlDevice() override {
    {
      std::lock_guard<std::mutex> lock(integrator_mutex_);
      stop_integrator_ = true;
    }
    integrator_wake_.notify_all();
    if (integrator_.joinable()) integrator_.join();
  }

  int index() const override { return index_; }
  std::string name() const override { return name_; }
  std::string uuid() const override { return uuid_; }
  std::string pci_bus_id() const override { return pci_bus_id_; }

  Result<std::vector<int>> SupportedSmClocks() override {
    auto memory = MemoryClocks();
    if (!memory.ok()) return memory.status();
    const unsigned max_memory = *std::max_element(memory->begin(), memory->end());
    unsigned clocks[512];
    unsigned count = 512;
    nvmlReturn_t rc = lib_->graphics_clocks(handle_, max_memory, &count, clocks);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceGetSupportedGraphicsClocks", rc);
    std::vector<int> out(clocks, clocks + count);
    std::sort(out.rbegin(), out.rend());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  Result<int> CurrentSmClock() override {
    unsigned mhz = 0;
    nvmlReturn_t rc = lib_->clock_info(handle_, NVML_CLOCK_SM, &mhz);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceGetClockInfo", rc);
    return static_cast<int>(mhz);
  }

  Result<uint64_t> EnergyMj() override {
    if (!integrating_.load(std::memory_order_acquire)) {
      if (lib_->total_energy != nullptr) {
        unsigned long long mj = 0;
        nvmlReturn_t rc = lib_->total_energy(handle_, &mj);
        if (rc == NVML_SUCCESS) return static_cast<uint64_t>(mj);
        if (rc != NVML_ERROR_NOT_SUPPORTED) {
          return Error("nvmlDeviceGetTotalEnergyConsumption", rc);
        }
      }
      // No counter on this GPU (pre-Volta) or in this library: integrate power.
      if (Status started = StartIntegrator(); !started.ok()) return started;
    }
    std::lock_guard<std::mutex> lock(integrator_mutex_);
    if (!integrator_status_.ok()) return integrator_status_;
    return static_cast<uint64_t>(integrated_mj_);
  }

  Result<double> PowerW() override {
    unsigned mw = 0;
    nvmlReturn_t rc = lib_->power_usage(handle_, &mw);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceGetPowerUsage", rc);
    return mw / 1000.0;
  }

  Status LockSmClock(int mhz) override {
    if (mhz <= 0)
      return Status::InvalidInput("SM clock must be positive, got " + std::to_string(mhz));
    const auto u = static_cast<unsigned>(mhz);
    nvmlReturn_t rc = lib_->lock_gpu_clocks(handle_, u, u);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceSetGpuLockedClocks", rc);
    return Status::Ok();
  }

  Status ResetSmClock() override {
    nvmlReturn_t rc = lib_->reset_gpu_clocks(handle_);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceResetGpuLockedClocks", rc);
    return Status::Ok();
  }

  Status LockMemoryClockMax() override {
    if (lib_->lock_memory_clocks == nullptr) {
      return Status::NotFound("nvmlDeviceSetMemoryLockedClocks is not in " + lib_->path +
                              " (driver too old to lock memory clocks)");
    }
    auto memory = MemoryClocks();
    if (!memory.ok()) return memory.status();
    const unsigned max_memory = *std::max_element(memory->begin(), memory->end());
    nvmlReturn_t rc = lib_->lock_memory_clocks(handle_, max_memory, max_memory);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceSetMemoryLockedClocks", rc);
    return Status::Ok();
  }

  Status ResetMemoryClock() override {
    if (lib_->reset_memory_clocks == nullptr) {
      return Status::NotFound("nvmlDeviceResetMemoryLockedClocks is not in " + lib_->path +
                              " (driver too old to lock memory clocks)");
    }
    nvmlReturn_t rc = lib_->reset_memory_clocks(handle_);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceResetMemoryLockedClocks", rc);
    return Status::Ok();
  }

 private:
  Status Error(const char* function, nvmlReturn_t rc) const {
    return NvmlStatus(*lib_, function, rc, "GPU " + std::to_string(index_));
  }

  Result<std::vector<unsigned>> MemoryClocks() {
    unsigned clocks[64];
    unsigned count = 64;
    nvmlReturn_t rc = lib_->memory_clocks(handle_, &count, clocks);
    if (rc != NVML_SUCCESS) return Error("nvmlDeviceGetSupportedMemoryClocks", rc);
    if (count == 0) {
      return Status::NotFound("GPU " + std::to_string(index_) +
                              " reports no supported memory clocks (clock control unsupported)");
    }
    return std::vector<unsigned>(clocks, clocks + count);
  }

  // Trapezoidal integration of power samples on a background thread.
  Status StartIntegrator() {
    std::lock_guard<std::mutex> lock(integrator_mutex_);
    if (integrator_.joinable()) return Status::Ok();
    auto first = PowerW();
    if (!first.ok()) return first.status();
    integrator_ = std::thread([this, last_w = *first]() mutable {
      using Clock = std::chrono::steady_clock;
      auto last_t = Clock::now();
      const auto period = std::chrono::duration<double>(sample_interval_s_);
      std::unique_lock<std::mutex> guard(integrator_mutex_);
      while (!integrator_wake_.wait_for(guard, period, [this] { return stop_integrator_; })) {
        guard.unlock();
        auto w = PowerW();
        const auto now = Clock::now();
        guard.lock();
        if (!w.ok()) {
          integrator_status_ = w.status();
          return;
        }
        integrated_mj_ +=
            (last_w + *w) / 2 * std::chrono::duration<double>(now - last_t).count() * 1000.0;
        last_w = *w;
        last_t = now;
      }
    });
    integrating_.store(true, std::memory_order_release);
    return Status::Ok();
  }

  std::shared_ptr<NvmlLibrary> lib_;
  nvmlDevice_t handle_;
  int index_;
  std::string name_, uuid_, pci_bus_id_;
  double sample_interval_s_;

  std::mutex integrator_mutex_;
  std::condition_variable integrator_wake_;
  std::thread integrator_;
  std::atomic<bool> integrating_{false};
  bool stop_integrator_ = false;
  double integrated_mj_ = 0;
  Status integrator_status_;
};

class NvmlBackend final : public Backend {
 public:
  NvmlBackend(std::shared_ptr<NvmlLibrary> lib, std::vector<std::unique_ptr<NvmlDevice>> devices,
              std::string version)
      : lib_(std::move(lib)), devices_(std::move(devices)), version_(std::move(version)) {}
  ~NvmlBackend() override {
    devices_.clear();  // stop integrators before NVML shuts down
  }
  std::string name() const override { return "nvml"; }
  int device_count() const override { return static_cast<int>(devices_.size()); }
  Device& device(int index) override { return *devices_[static_cast<size_t>(index)]; }
  std::string version() const override { return version_; }

 private:
  std::shared_ptr<NvmlLibrary> lib_;
  std::vector<std::unique_ptr<NvmlDevice>> devices_;
  std::string version_;
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenNvmlBackend(const NvmlOptions& options) {
  auto lib = std::make_shared<NvmlLibrary>();
  lib->path = options.library;
  if (lib->path.empty()) {
    const char* env = std::getenv("PERSEUS_NVML_LIBRARY");
    lib->path = env != nullptr && *env != '\0' ? env : "libnvidia-ml.so.1";
  }
  dlerror();
  lib->handle = dlopen(lib->path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib->handle == nullptr) {
    const char* why = dlerror();
    return Status::Unavailable(
        "cannot load " + lib->path + " (" + (why != nullptr ? why : "unknown reason") +
        "): no NVIDIA driver here, or its libnvidia-ml is not on the loader path (install the "
        "driver, or add the directory holding libnvidia-ml.so.1 to LD_LIBRARY_PATH)");
  }
  const std::pair<const char*, bool> required[] = {
      {"nvmlInit_v2", Resolve(*lib, "nvmlInit_v2", &lib->init)},
      {"nvmlShutdown", Resolve(*lib, "nvmlShutdown", &lib->shutdown)},
      {"nvmlErrorString", Resolve(*lib, "nvmlErrorString", &lib->error_string)},
      {"nvmlDeviceGetCount_v2", Resolve(*lib, "nvmlDeviceGetCount_v2", &lib->get_count)},
      {"nvmlDeviceGetHandleByIndex_v2",
       Resolve(*lib, "nvmlDeviceGetHandleByIndex_v2", &lib->get_handle)},
      {"nvmlDeviceGetName", Resolve(*lib, "nvmlDeviceGetName", &lib->get_name)},
      {"nvmlDeviceGetUUID", Resolve(*lib, "nvmlDeviceGetUUID", &lib->get_uuid)},
      {"nvmlDeviceGetSupportedMemoryClocks",
       Resolve(*lib, "nvmlDeviceGetSupportedMemoryClocks", &lib->memory_clocks)},
      {"nvmlDeviceGetSupportedGraphicsClocks",
       Resolve(*lib, "nvmlDeviceGetSupportedGraphicsClocks", &lib->graphics_clocks)},
      {"nvmlDeviceGetClockInfo", Resolve(*lib, "nvmlDeviceGetClockInfo", &lib->clock_info)},
      {"nvmlDeviceGetPowerUsage", Resolve(*lib, "nvmlDeviceGetPowerUsage", &lib->power_usage)},
      {"nvmlDeviceSetGpuLockedClocks",
       Resolve(*lib, "nvmlDeviceSetGpuLockedClocks", &lib->lock_gpu_clocks)},
      {"nvmlDeviceResetGpuLockedClocks",
       Resolve(*lib, "nvmlDeviceResetGpuLockedClocks", &lib->reset_gpu_clocks)},
  };
  for (const auto& [symbol, found] : required) {
    if (!found) {
      return Status::Unavailable(lib->path + " has no " + symbol +
                                 ": the NVIDIA driver is too old for Perseus (needs R470+)");
    }
  }
  (void)Resolve(*lib, "nvmlSystemGetDriverVersion", &lib->driver_version);
  (void)Resolve(*lib, "nvmlDeviceGetPciInfo_v3", &lib->pci_info);
  (void)Resolve(*lib, "nvmlDeviceGetTotalEnergyConsumption", &lib->total_energy);
  (void)Resolve(*lib, "nvmlDeviceSetMemoryLockedClocks", &lib->lock_memory_clocks);
  (void)Resolve(*lib, "nvmlDeviceResetMemoryLockedClocks", &lib->reset_memory_clocks);

  nvmlReturn_t rc = lib->init();
  if (rc != NVML_SUCCESS) return NvmlStatus(*lib, "nvmlInit_v2", rc, "");
  lib->initialised = true;

  std::string version = "NVML (" + lib->path + ")";
  if (lib->driver_version != nullptr) {
    char text[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
    if (lib->driver_version(text, sizeof text) == NVML_SUCCESS) {
      version = std::string("NVIDIA driver ") + text;
    }
  }

  unsigned count = 0;
  rc = lib->get_count(&count);
  if (rc != NVML_SUCCESS) return NvmlStatus(*lib, "nvmlDeviceGetCount_v2", rc, "");
  if (count == 0) {
    return Status::NotFound("NVML sees no GPU on this machine (" + version +
                            "); `nvidia-smi -L` should list them");
  }
  std::vector<std::unique_ptr<NvmlDevice>> devices;
  for (unsigned i = 0; i < count; ++i) {
    const std::string where = "GPU " + std::to_string(i);
    nvmlDevice_t handle = nullptr;
    rc = lib->get_handle(i, &handle);
    if (rc != NVML_SUCCESS) return NvmlStatus(*lib, "nvmlDeviceGetHandleByIndex_v2", rc, where);
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
    rc = lib->get_name(handle, name, sizeof name);
    if (rc != NVML_SUCCESS) return NvmlStatus(*lib, "nvmlDeviceGetName", rc, where);
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    rc = lib->get_uuid(handle, uuid, sizeof uuid);
    if (rc != NVML_SUCCESS) return NvmlStatus(*lib, "nvmlDeviceGetUUID", rc, where);
    std::string pci_bus_id;  // optional: empty if NVML cannot tell
    nvmlPciInfo_t pci{};
    if (lib->pci_info != nullptr && lib->pci_info(handle, &pci) == NVML_SUCCESS) {
      pci.busId[sizeof pci.busId - 1] = '\0';
      pci_bus_id = pci.busId;
    }
    devices.push_back(std::make_unique<NvmlDevice>(lib, handle, static_cast<int>(i), name, uuid,
                                                   std::move(pci_bus_id),
                                                   options.power_sample_interval_s));
  }
  return std::unique_ptr<Backend>(
      std::make_unique<NvmlBackend>(std::move(lib), std::move(devices), std::move(version)));
}

}  // namespace perseus::gpu
