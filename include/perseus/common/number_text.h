// A number in messages, as people write it: 4 significant digits, %g style
// (1e-05, 100, 0.0501, 9.537e-05).
#pragma once

#include <cstdio>
#include <string>

namespace perseus {

inline std::string NumberText(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g", v);
  return buffer;
}

}  // namespace perseus
