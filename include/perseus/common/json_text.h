// JSON text for the wire and for storage. Bytes that are not UTF-8 (a request
// may echo anything back in an error message) are replaced instead of making
// nlohmann::json throw.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace perseus {

inline std::string JsonText(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace perseus
