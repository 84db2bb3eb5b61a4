#include "src/gpu/exit_guard.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "perseus/gpu/frequency_controller.h"

namespace perseus::gpu::internal {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM};

struct Registry {
  std::mutex mutex;
  std::vector<FrequencyController*> controllers;
  bool hooks_installed = false;
  bool signals_installed = false;
  std::terminate_handler previous_terminate = nullptr;
};

// Never destroyed: the exit paths may run during static destruction.
Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

int g_signal_pipe[2] = {-1, -1};
struct sigaction g_previous[NSIG];

void OnTerminate() {
  ResetAllControllers();
  std::terminate_handler previous = TheRegistry().previous_terminate;
  if (previous != nullptr) previous();
  std::abort();
}

// Signal context: only async-signal-safe work. The watcher thread does the rest.
void OnSignal(int sig, siginfo_t* info, void* context) {
  const unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &byte, 1);
  const struct sigaction& previous = g_previous[sig];
  if ((previous.sa_flags & SA_SIGINFO) != 0) {
    if (previous.sa_sigaction != nullptr) previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
             previous.sa_handler != nullptr) {
    previous.sa_handler(sig);
  }
}

void WatchSignals() {
  BlockExitSignalsInThisThread();
  for (;;) {
    unsigned char byte = 0;
    const ssize_t n = read(g_signal_pipe[0], &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    const int sig = byte;
    ResetAllControllers();
    const struct sigaction& previous = g_previous[sig];
    const bool default_action =
        (previous.sa_flags & SA_SIGINFO) == 0 && previous.sa_handler == SIG_DFL;
    if (default_action) {
      // Take the signal's default effect (terminate) with the clocks restored.
      signal(sig, SIG_DFL);
      kill(getpid(), sig);
    }
  }
}

void InstallSignalWatcher() {
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return;  // best effort: no watcher
  for (int sig : kSignals) {
    struct sigaction current {};
    sigaction(sig, nullptr, &current);
    if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_IGN) continue;
    g_previous[sig] = current;
    struct sigaction ours {};
    ours.sa_sigaction = OnSignal;
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    sigaction(sig, &ours, nullptr);
  }
  std::thread(WatchSignals).detach();
}

}  // namespace

void BlockExitSignalsInThisThread() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kSignals) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void RegisterController(FrequencyController* controller, bool install_signal_watcher) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.controllers.push_back(controller);
  if (!r.hooks_installed) {
    r.hooks_installed = true;
    std::atexit(ResetAllControllers);
    r.previous_terminate = std::set_terminate(OnTerminate);
  }
  if (install_signal_watcher && !r.signals_installed) {
    r.signals_installed = true;
    InstallSignalWatcher();
  }
}

void UnregisterController(FrequencyController* controller) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.controllers.erase(std::remove(r.controllers.begin(), r.controllers.end(), controller),
                      r.controllers.end());
}

void ResetAllControllers() {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (FrequencyController* c : r.controllers) c->ResetForExit();
}

}  // namespace perseus::gpu::internal
