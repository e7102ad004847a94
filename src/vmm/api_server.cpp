#include "vmm/api_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <httplib.h>

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

namespace {

const char* statusMeaning(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such route";
    case 405: return "method not allowed";
    case 413: return "request body too large";
    case 414: return "request line too long";
    default: return status >= 500 ? "internal error" : "request refused";
  }
}

}  // namespace

// cpp-httplib 0.11 cannot bind a UNIX socket itself; it serves one handed in
// as its listening socket. Connections are served in turn on the API thread
// (no worker threads to sandbox), each closed after one request, with short
// timeouts so a silent client delays the next only briefly.
class ApiServer::HttpServer : public httplib::Server {
 public:
  explicit HttpServer(int listenFd) {
    svr_sock_ = listenFd;
    new_task_queue = [this] { return new InlineTasks(*this); };
    set_keep_alive_max_count(1);
    set_read_timeout(2, 0);
    set_write_timeout(2, 0);
    set_idle_interval(0, 100'000);
    set_payload_max_length(kMaxBodyBytes);
  }

  void requestStop() { stopRequested_ = true; }
  // Closing the listening socket ends listen_after_bind(); the serving thread
  // does it on its idle tick and after each connection, so stopping needs no
  // syscall on the caller's thread.
  void closeIfStopRequested() {
    if (!stopRequested_) return;
    int fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) ::close(fd);
  }

 private:
  class InlineTasks : public httplib::TaskQueue {
   public:
    explicit InlineTasks(HttpServer& server) : server_(server) {}
    // Checked after each connection too: a client that connects more often than
    // the idle tick would otherwise keep a stopping server alive.
    void enqueue(std::function<void()> task) override {
      task();
      server_.closeIfStopRequested();
    }
    void shutdown() override {}
    void on_idle() override { server_.closeIfStopRequested(); }

   private:
    HttpServer& server_;
  };

  std::atomic<bool> stopRequested_{false};
};

Result<std::unique_ptr<ApiServer>> ApiServer::create(const VmConfig& config) {
  auto fd = bindUnixSocket(config.apiSocket, SOCK_STREAM, "--api-socket");
  if (!fd) return fd.error();
  return std::unique_ptr<ApiServer>(new ApiServer(config, fd->release()));
}

ApiServer::ApiServer(const VmConfig& config, int listenFd)
    : config_(config), http_(std::make_unique<HttpServer>(listenFd)) {
  auto answer = [this](const httplib::Request& request, httplib::Response& response) {
    ApiReply reply = router_.dispatch(request.method, request.path, request.body);
    response.status = reply.status;
    response.set_content(reply.body.dump(), "application/json");
  };
  for (auto add : {&httplib::Server::Get, &httplib::Server::Put, &httplib::Server::Post, &httplib::Server::Patch,
                   &httplib::Server::Delete, &httplib::Server::Options})
    (http_.get()->*add)(".*", answer);
  // Refusals httplib makes itself (413, malformed requests) get the same JSON shape.
  http_->set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.body.empty())
      response.set_content(apiError(response.status, statusMeaning(response.status)).body.dump(), "application/json");
  });
  http_->set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
    response.status = 500;
    response.set_content(apiError(500, "the request failed inside the VMM").body.dump(), "application/json");
  });
}

void ApiServer::start() {
  thread_ = std::thread([this] { serve(); });
}

void ApiServer::serve() {
  if (auto entered = enterThreadRole(ThreadRole::Api, config_); !entered) {
    log::error("API server: sandbox: {}", entered.error().message);
    http_->requestStop();
    http_->closeIfStopRequested();  // clients get refused rather than left waiting
  } else {
    http_->listen_after_bind();
  }
  // The very string the sandbox lets this thread unlink (vmm/sandbox.cpp).
  ::unlink(config_.apiSocket.c_str());
}

ApiServer::~ApiServer() {
  http_->requestStop();
  if (thread_.joinable()) {
    thread_.join();
  } else {
    http_->closeIfStopRequested();
    ::unlink(config_.apiSocket.c_str());
  }
}

}  // namespace strata::vmm
