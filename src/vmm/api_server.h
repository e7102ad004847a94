// ApiServer: the control API of one VM — HTTP/1.1 + JSON on a UNIX socket
// (cpp-httplib, in the HTTP module: base/http_module.h), served by one thread in
// the sandbox's Api role, which loads the module before it enters the role, while
// the vCPUs already run. The units that own a capability register its routes (VM
// state in vm_routes, snapshots, balloon, migration...); ApiRouter dispatches them
// by exact method and path.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/http_module.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

struct ApiReply {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
};

// A 4xx/5xx reply: {"error": message}.
ApiReply apiError(int status, const std::string& message);

class ApiRouter {
 public:
  // The parsed request body (null when it was empty). A handler may throw
  // nlohmann::json::exception on a body of the wrong shape: the client gets a 400.
  using Handler = std::function<ApiReply(const nlohmann::json& body)>;

  // method: "GET", "PUT", ...; path: exact, e.g. "/vm/state". Registering a route twice replaces it.
  void addRoute(const std::string& method, const std::string& path, Handler handler);
  // 404 for an unknown path, 405 for a known path with another method, 400 for
  // a body that is not JSON; otherwise the route's handler answers.
  ApiReply dispatch(const std::string& method, const std::string& path, const std::string& body) const;
  // Every route as (method, path), sorted.
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
};

// Serves the listening socket's clients over HTTP one at a time, each request answered
// by `router`, until `stop` is set; closes listenFd. `enterSandbox` is called once the
// server is set up (which changes the SIGPIPE disposition), before it accepts anyone; its
// error ends serving. In the HTTP module (api_server_httplib.cpp).
using ServeApiSocket = Result<void>(int listenFd, const ApiRouter& router, const std::atomic<bool>& stop,
                                    const std::function<Result<void>()>& enterSandbox);
extern http_module::Entry<ServeApiSocket> serveApiSocket;

class ApiServer {
 public:
  static constexpr size_t kMaxBodyBytes = 64 * 1024;  // larger requests get a 413
  // At most this long the API waits for the vCPUs to start before it loads the HTTP module
  // (a VM waiting for an incoming migration starts them only later).
  static constexpr std::chrono::milliseconds kVcpuStartWait{1000};

  // Binds config.apiSocket, mode 0600: a socket file nobody serves (a dead VM's)
  // is replaced, one a live VM serves is refused. Call before the sandbox is up.
  static Result<std::unique_ptr<ApiServer>> create(const VmConfig& config);
  // Stops serving and removes the socket file.
  ~ApiServer();

  // Routes are added before start().
  ApiRouter& router() { return router_; }
  void addRoute(const std::string& method, const std::string& path, ApiRouter::Handler handler) {
    router_.addRoute(method, path, std::move(handler));
  }
  // Serves on a thread of its own, one connection at a time.
  void start();

 private:
  ApiServer(const VmConfig& config, UniqueFd listenFd) : config_(config), listenFd_(std::move(listenFd)) {}
  void serve();
  Result<void> loadAndServe();  // the HTTP module, then serving until stopped

  const VmConfig& config_;
  ApiRouter router_;
  UniqueFd listenFd_;  // handed to serveApiSocket, which closes it
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace strata::vmm
