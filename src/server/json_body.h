// Parsing a request's JSON body with bounded memory: the size, the nesting
// depth and the number of values are checked by a SAX pass that builds
// nothing, and only a body within every limit is parsed into a DOM. (A body of
// 32 MB of `[` cost 2.4 GB as a DOM before its 400.)
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

#include "perseus/common/status.h"

namespace perseus::server {

struct JsonLimits {
  size_t max_bytes = 1 << 20;   // the body's size
  int max_depth = 64;           // arrays and objects inside one another
  size_t max_values = 1 << 20;  // values in all (objects, arrays, strings, numbers, ...)
};

// The body as JSON, or kInvalidInput with a message that says which limit it
// exceeds (and at which byte) or where its syntax is wrong.
Result<nlohmann::json> ParseJsonBody(std::string_view body, const JsonLimits& limits = {});

}  // namespace perseus::server
