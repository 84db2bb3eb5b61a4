// Reading optional figures out of the coordinator's JSON bodies (GET
// /v1/jobs/ID and .../report), for the pages and tables that show them:
// anything absent, null or of the wrong type reads as missing, never throws.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "nlohmann/json.hpp"

namespace perseus::report {

// obj[key] as a number, if obj is an object holding one there.
inline std::optional<double> Number(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// obj[key] (a null JSON value when obj is no object or has none).
inline const nlohmann::json& Member(const nlohmann::json& obj, const char* key) {
  static const nlohmann::json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

// obj[key] as text (a string as is, anything else as JSON); `missing` without one.
inline std::string TextOr(const nlohmann::json& obj, const char* key, const std::string& missing) {
  const nlohmann::json& v = Member(obj, key);
  if (v.is_null()) return missing;
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// v printed with the printf format `fmt` (one double), or `missing`.
inline std::string FigureOr(const char* fmt, std::optional<double> v, const std::string& missing) {
  if (!v) return missing;
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, *v);
  return buf;
}

}  // namespace perseus::report
