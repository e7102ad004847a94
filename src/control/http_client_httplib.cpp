// The HTTP client over a UNIX socket with cpp-httplib: part of the HTTP module (base/http_module.h).
#include <sys/socket.h>

#include <optional>

#include <fmt/core.h>
#include <httplib.h>

#include "control/http_client.h"

namespace strata::control {
namespace {

Result<HttpReply> sendWithHttplib(const std::string& socketPath, const HttpRequest& request) {
  httplib::Client client(socketPath);
  client.set_address_family(AF_UNIX);
  client.set_connection_timeout(request.timeout);
  client.set_read_timeout(request.timeout);
  client.set_write_timeout(request.timeout);
  httplib::Headers headers;
  if (!request.bearerToken.empty()) headers.emplace("Authorization", "Bearer " + request.bearerToken);
  const char* type = "application/json";
  auto send = [&]() -> std::optional<httplib::Result> {
    if (request.method == "GET") return client.Get(request.path.c_str(), headers);
    if (request.method == "POST") return client.Post(request.path.c_str(), headers, request.body, type);
    if (request.method == "PUT") return client.Put(request.path.c_str(), headers, request.body, type);
    if (request.method == "DELETE") return client.Delete(request.path.c_str(), headers, request.body, type);
    return std::nullopt;
  };
  auto sent = send();
  if (!sent) return Error{fmt::format("HTTP method {} not supported", request.method)};
  httplib::Result& result = *sent;
  if (!result)
    return Error{fmt::format("{}: {} {}: {}", socketPath, request.method, request.path, httplib::to_string(result.error()))};
  return HttpReply{result->status, result->body};
}

[[maybe_unused]] const bool kProvided = (sendHttpRequest.provide(&sendWithHttplib), true);

}  // namespace
}  // namespace strata::control
