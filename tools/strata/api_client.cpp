#include "api_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <fmt/core.h>
#include <httplib.h>

namespace strata::cli {
namespace {

// cpp-httplib 0.11 connects over TCP only; this client dials a UNIX socket instead.
class UnixSocketClient : public httplib::ClientImpl {
 public:
  explicit UnixSocketClient(std::string path) : httplib::ClientImpl("localhost"), path_(std::move(path)) {}

 protected:
  bool create_and_connect_socket(Socket& socket, httplib::Error& error) override {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof address.sun_path) {
      error = httplib::Error::Connection;
      return false;
    }
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      if (fd >= 0) ::close(fd);
      error = httplib::Error::Connection;
      return false;
    }
    socket.sock = fd;
    return true;
  }

 private:
  std::string path_;
};

}  // namespace

Result<ApiResponse> apiRequest(const std::string& socketPath, const std::string& method, const std::string& path,
                               const nlohmann::json& body) {
  UnixSocketClient client(socketPath);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(60, 0);  // a pause waits for the guest's disk requests to finish
  std::string content = body.is_null() ? std::string() : body.dump();
  httplib::Result result = [&] {
    if (method == "GET") return client.Get(path.c_str());
    if (method == "PUT") return client.Put(path.c_str(), content, "application/json");
    if (method == "POST") return client.Post(path.c_str(), content, "application/json");
    return client.Delete(path.c_str(), content, "application/json");
  }();
  if (!result)
    return Error{fmt::format("{}: no answer from the VM's API ({})", socketPath, httplib::to_string(result.error()))};
  ApiResponse response{result->status, nlohmann::json::parse(result->body, nullptr, /*allow_exceptions=*/false)};
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
