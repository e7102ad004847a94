// ApiClient: HTTP + JSON requests to a VM's control API on its UNIX socket
// (`strata run --api-socket`, src/vmm/api_server.h). `strata vm` uses it, and
// so can any other command that drives a VM through its API.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace strata::cli {

struct ApiResponse {
  int status = 0;
  nlohmann::json body;  // null when the server sent no JSON
};

// One request; a null body sends none. Fails only when the socket cannot be reached or the answer is not HTTP.
Result<ApiResponse> apiRequest(const std::string& socketPath, const std::string& method, const std::string& path,
                               const nlohmann::json& body = nullptr);

// The same, with a 4xx/5xx answer turned into an error carrying the server's message.
Result<nlohmann::json> apiCall(const std::string& socketPath, const std::string& method, const std::string& path,
                               const nlohmann::json& body = nullptr);

}  // namespace strata::cli
