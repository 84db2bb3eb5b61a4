// The OpenAPI 3 description of /v1 that GET /v1/openapi.json serves: the text
// of src/server/openapi.json, embedded at build time (src/server/CMakeLists.txt).
#pragma once

#include <string_view>

namespace perseus::server {

extern const std::string_view kOpenApiJson;

}  // namespace perseus::server
