// The shipped GPT-3 profile and the A100's clocks, as the server tests use
// them (header-only: no HTTP, for the domain's unit tests too).
#pragma once

#include <fstream>
#include <string>
#include <vector>

namespace perseus::testing {

// The shipped GPT-3 profile's first `stages` stages (its stages are alike).
inline std::string ProfileCsv(int stages) {
  std::ifstream in(PERSEUS_DATA_DIR "/profiles/gpt3-175b+a100_sxm_bf16.csv");
  std::string line, out;
  std::getline(in, line);
  out = line + "\n";
  while (std::getline(in, line)) {
    if (std::stoi(line.substr(0, line.find(','))) < stages) out += line + "\n";
  }
  return out;
}

inline std::vector<int> A100Clocks() {
  std::vector<int> clocks;
  for (int mhz = 1410; mhz >= 855; mhz -= 15) clocks.push_back(mhz);
  return clocks;
}

}  // namespace perseus::testing
