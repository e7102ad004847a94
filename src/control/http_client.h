// HTTP/1.1 over a UNIX socket: how the daemon drives each VM's API socket and
// how the CLI and tests reach the daemon. One request per call; a dead or
// silent peer is an Error after the timeout, never a hang.
#pragma once

#include <chrono>
#include <string>

#include "base/http_module.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::control {

struct HttpReply {
  int status = 0;
  std::string body;
};

struct HttpRequest {
  std::string method, path, body;
  std::string bearerToken;  // sent as "Authorization: Bearer ..." when set
  std::chrono::milliseconds timeout{5000};
};

Result<HttpReply> httpOverUnixSocket(const std::string& socketPath, const HttpRequest& request);
// What httpOverUnixSocket calls: cpp-httplib's client, in the HTTP module (http_client_httplib.cpp).
using SendHttpRequest = Result<HttpReply>(const std::string& socketPath, const HttpRequest& request);
extern http_module::Entry<SendHttpRequest> sendHttpRequest;

// A connected stream socket to the UNIX socket at path (a VM's console or API socket, the daemon's).
Result<UniqueFd> connectUnixSocket(const std::string& path);

}  // namespace strata::control
