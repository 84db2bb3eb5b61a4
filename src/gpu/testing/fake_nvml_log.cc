#include "src/gpu/testing/fake_nvml_log.h"

#include <fstream>
#include <sstream>

namespace perseus::gpu::testing {

std::vector<std::string> FakeNvmlCalls(const std::string& log_path) {
  std::ifstream in(log_path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    lines.push_back(space == std::string::npos ? line : line.substr(space + 1));
  }
  return lines;
}

std::vector<std::string> FakeNvmlCalls(const std::string& log_path, const std::string& function) {
  std::vector<std::string> out;
  for (const std::string& line : FakeNvmlCalls(log_path)) {
    if (line.rfind(function + " ", 0) == 0) out.push_back(line);
  }
  return out;
}

int FakeNvmlSmState(const std::string& log_path, int gpu) {
  int state = -1;
  const std::string id = " " + std::to_string(gpu);
  for (const std::string& line : FakeNvmlCalls(log_path)) {
    if (line.size() < 5 || line.compare(line.size() - 5, 5, " -> 0") != 0) continue;
    std::istringstream in(line);
    std::string function;
    int index = -1;
    in >> function >> index;
    if (index != gpu) continue;
    if (function == "nvmlDeviceSetGpuLockedClocks") {
      int min = 0, max = 0;
      in >> min >> max;
      state = max;
    } else if (function == "nvmlDeviceResetGpuLockedClocks") {
      state = 0;
    }
  }
  return state;
}

}  // namespace perseus::gpu::testing
