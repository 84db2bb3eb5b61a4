// Writing files so that a killed run never leaves a torn one.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "perseus/common/status.h"

namespace perseus {

// Writes `text` to PATH.tmp, then renames it to PATH.
inline Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::InvalidInput(tmp.string() + ": cannot write");
    out << text;
    out.flush();
    if (!out) return Status::Internal(tmp.string() + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Internal(path.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace perseus
