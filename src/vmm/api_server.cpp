#include "vmm/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "base/log.h"
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

namespace {

// Whether a process accepts connections on the socket file at `path`.
bool someoneServes(const sockaddr_un& address) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return false;
  return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

Result<UniqueFd> bindApiSocket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path)
    return Error{fmt::format("--api-socket {}: the path must be 1 to {} bytes", path, sizeof address.sun_path - 1)};
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) return Error{fmt::format("--api-socket {}: exists and is not a socket", path)};
    if (someoneServes(address)) return Error{fmt::format("--api-socket {}: another VM is serving on it", path)};
    if (::unlink(path.c_str()) != 0) return errnoError(fmt::format("--api-socket {}: removing the stale socket", path));
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket(AF_UNIX)");
  mode_t previous = ::umask(0177);  // the file is created 0600: only its owner drives the VM
  int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  int bindErrno = errno;
  ::umask(previous);
  if (bound != 0) return errnoError(fmt::format("--api-socket {}", path), bindErrno);
  if (::listen(fd.get(), 16) != 0) return errnoError(fmt::format("--api-socket {}: listen", path));
  return fd;
}

}  // namespace

http_module::Entry<ServeApiSocket> serveApiSocket{"serveApiSocket"};

Result<std::unique_ptr<ApiServer>> ApiServer::create(const VmConfig& config) {
  auto fd = bindApiSocket(config.apiSocket);
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
