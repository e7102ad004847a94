#include "control/http_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <optional>

#include <httplib.h>

#include <fmt/core.h>

namespace strata::control {

Result<HttpReply> httpOverUnixSocket(const std::string& socketPath, const HttpRequest& request) {
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

Result<UniqueFd> connectUnixSocket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Error{fmt::format("{}: path too long", path)};
  path.copy(address.sun_path, path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return errnoError(path);
  return fd;
}

}  // namespace strata::control
