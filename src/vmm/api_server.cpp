#include "vmm/api_server.h"

#include <sys/socket.h>
#include <unistd.h>


#include <fmt/core.h>

#include "base/log.h"
#include "base/unix_socket.h"
#include "base/unique_fd.h"
#include "vmm/sandbox.h"

namespace strata::vmm {

ApiReply apiError(int status, const std::string& message) { return {status, {{"error", message}}}; }

void ApiRouter::addRoute(const std::string& method, const std::string& path, Handler handler) {
  routes_[path][method] = std::move(handler);
}

ApiReply ApiRouter::dispatch(const std::string& method, const std::string& path, const std::string& body) const {
  auto byPath = routes_.find(path);
  if (byPath == routes_.end()) return apiError(404, fmt::format("no route {}", path));
  auto route = byPath->second.find(method);
  if (route == byPath->second.end()) return apiError(405, fmt::format("{} does not take {}", path, method));
  nlohmann::json parsed;  // null for an empty body
  if (!body.empty()) {
    parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return apiError(400, "the request body is not valid JSON");
  }
  try {
    return route->second(parsed);
  } catch (const nlohmann::json::exception& e) {
    return apiError(400, fmt::format("unexpected request body: {}", e.what()));
  }
}

std::vector<std::pair<std::string, std::string>> ApiRouter::routes() const {
  std::vector<std::pair<std::string, std::string>> all;
  for (const auto& [path, methods] : routes_)
    for (const auto& [method, handler] : methods) all.emplace_back(method, path);
  return all;
}

http_module::Entry<ServeApiSocket> serveApiSocket{"serveApiSocket"};

Result<std::unique_ptr<ApiServer>> ApiServer::create(const VmConfig& config) {
  auto fd = bindUnixSocket(config.apiSocket, SOCK_STREAM, "--api-socket");
  if (!fd) return fd.error();
  return std::unique_ptr<ApiServer>(new ApiServer(config, std::move(*fd)));
}

void ApiServer::start() {
  thread_ = std::thread([this] { serve(); });
}

// The module is loaded here, before this thread's sandbox and once the vCPU threads have started,
// so that the restore path never waits for it; clients queue on the socket meanwhile. On any
// failure the socket is closed: clients get refused rather than left waiting.
void ApiServer::serve() {
  waitForVcpuThreads(config_.cpus, kVcpuStartWait, stop_);
  if (!stop_)  // a VM that failed to start ends at once
    if (auto served = loadAndServe(); !served) log::error("API server: {}", served.error().message);
  listenFd_.reset();
  // The very string the sandbox lets this thread unlink (vmm/sandbox.cpp).
  ::unlink(config_.apiSocket.c_str());
}

Result<void> ApiServer::loadAndServe() {
  auto serveSocket = serveApiSocket.get();
  if (!serveSocket) return serveSocket.error();
  auto enterSandbox = [this]() -> Result<void> {
    if (auto entered = enterThreadRole(ThreadRole::Api, config_); !entered) return Error{"sandbox: " + entered.error().message};
    return {};
  };
  return (*serveSocket)(listenFd_.release(), router_, stop_, enterSandbox);
}

ApiServer::~ApiServer() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  } else {
    listenFd_.reset();
    ::unlink(config_.apiSocket.c_str());
  }
}

}  // namespace strata::vmm
