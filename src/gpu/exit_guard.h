// Process-wide registry of live frequency controllers and the exit paths that
// restore their GPUs' clocks: std::exit, std::terminate, SIGINT and SIGTERM.
#pragma once

namespace perseus::gpu {

class FrequencyController;

namespace internal {

// Adds a controller; the first call installs the atexit and terminate hooks,
// and (when install_signal_watcher) the SIGINT/SIGTERM watcher.
void RegisterController(FrequencyController* controller, bool install_signal_watcher);
void UnregisterController(FrequencyController* controller);
// Restores the clocks of every registered controller.
void ResetAllControllers();

// Blocks SIGINT and SIGTERM in the calling thread, so that they are handled on
// the threads of the program (and their handler never interrupts a worker
// thread in the middle of a driver call).
void BlockExitSignalsInThisThread();

}  // namespace internal
}  // namespace perseus::gpu
