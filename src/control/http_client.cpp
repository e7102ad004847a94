#include "control/http_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <fmt/core.h>

namespace strata::control {

http_module::Entry<SendHttpRequest> sendHttpRequest{"sendHttpRequest"};

Result<HttpReply> httpOverUnixSocket(const std::string& socketPath, const HttpRequest& request) {
  auto send = sendHttpRequest.get();
  if (!send) return send.error();
  return (*send)(socketPath, request);
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
