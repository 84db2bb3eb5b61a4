// Test helper: reading the stand-in NVML library's call log.
#pragma once

#include <string>
#include <vector>

namespace perseus::gpu::testing {

// The log's lines with the pid removed: "<function> <arguments> -> <rc>".
std::vector<std::string> FakeNvmlCalls(const std::string& log_path);
// Lines starting with `function`.
std::vector<std::string> FakeNvmlCalls(const std::string& log_path, const std::string& function);
// The SM clock of `gpu` after the last successful lock or reset in the log:
// the locked MHz, 0 after a reset, -1 if neither happened.
int FakeNvmlSmState(const std::string& log_path, int gpu);

}  // namespace perseus::gpu::testing
