#include "api_client.h"

#include <fmt/core.h>

#include "control/http_client.h"

namespace strata::cli {

Result<ApiResponse> apiRequest(const std::string& socketPath, const std::string& method, const std::string& path,
                               const nlohmann::json& body) {
  std::string content = body.is_null() ? std::string() : body.dump();
  // A pause waits for the guest's disk requests to finish.
  auto reply = control::httpOverUnixSocket(socketPath, {method, path, content, "", std::chrono::seconds(60)});
  if (!reply) return Error{fmt::format("{}: no answer from the VM's API ({})", socketPath, reply.error().message)};
  ApiResponse response{reply->status, nlohmann::json::parse(reply->body, nullptr, /*allow_exceptions=*/false)};
  if (response.body.is_discarded()) response.body = nullptr;
  return response;
}

Result<nlohmann::json> apiCall(const std::string& socketPath, const std::string& method, const std::string& path,
                               const nlohmann::json& body) {
  auto response = apiRequest(socketPath, method, path, body);
  if (!response) return response.error();
  if (response->status >= 400) {
    bool hasMessage = response->body.is_object() && response->body.contains("error") && response->body["error"].is_string();
    return Error{fmt::format("{} {}: {} {}", method, path, response->status,
                             hasMessage ? response->body["error"].get<std::string>() : "(no message)")};
  }
  return response->body;
}

}  // namespace strata::cli
