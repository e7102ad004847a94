// The VM's API socket served by cpp-httplib: part of the HTTP module (base/http_module.h).
#include <unistd.h>

#include <atomic>

#include <httplib.h>

#include "vmm/api_server.h"

namespace strata::vmm {
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

// cpp-httplib 0.11 cannot bind a UNIX socket itself; it serves one handed in
// as its listening socket. Connections are served in turn on the API thread
// (no worker threads to sandbox), each closed after one request, with short
// timeouts so a silent client delays the next only briefly.
class HttpServer : public httplib::Server {
 public:
  HttpServer(int listenFd, const ApiRouter& router, const std::atomic<bool>& stop) : stop_(stop) {
    svr_sock_ = listenFd;
    new_task_queue = [this] { return new InlineTasks(*this); };
    set_keep_alive_max_count(1);
    set_read_timeout(2, 0);
    set_write_timeout(2, 0);
    set_idle_interval(0, 100'000);
    set_payload_max_length(ApiServer::kMaxBodyBytes);
    auto answer = [&router](const httplib::Request& request, httplib::Response& response) {
      ApiReply reply = router.dispatch(request.method, request.path, request.body);
      response.status = reply.status;
      response.set_content(reply.body.dump(), "application/json");
    };
    for (auto add : {&httplib::Server::Get, &httplib::Server::Put, &httplib::Server::Post, &httplib::Server::Patch,
                     &httplib::Server::Delete, &httplib::Server::Options})
      (this->*add)(".*", answer);
    // Refusals httplib makes itself (413, malformed requests) get the same JSON shape.
    set_error_handler([](const httplib::Request&, httplib::Response& response) {
      if (response.body.empty())
        response.set_content(apiError(response.status, statusMeaning(response.status)).body.dump(), "application/json");
    });
    set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
      response.status = 500;
      response.set_content(apiError(500, "the request failed inside the VMM").body.dump(), "application/json");
    });
  }

  // Closing the listening socket ends listen_after_bind(); the serving thread
  // does it on its idle tick and after each connection, so stopping needs no
  // syscall on the stopping thread.
  void closeIfStopRequested() {
    if (stop_) closeListeningSocket();
  }
  void closeListeningSocket() {
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

  const std::atomic<bool>& stop_;
};

Result<void> serve(int listenFd, const ApiRouter& router, const std::atomic<bool>& stop,
                   const std::function<Result<void>()>& enterSandbox) {
  HttpServer server(listenFd, router, stop);  // httplib::Server's constructor ignores SIGPIPE (rt_sigaction)
  if (auto entered = enterSandbox(); !entered) {
    server.closeListeningSocket();
    return entered;
  }
  server.closeIfStopRequested();  // stopped while the module loaded
  server.listen_after_bind();
  server.closeListeningSocket();
  return {};
}

[[maybe_unused]] const bool kProvided = (serveApiSocket.provide(&serve), true);

}  // namespace
}  // namespace strata::vmm
