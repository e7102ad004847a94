#include "daemon_client.h"

#include <cstdio>
#include <cstdlib>
#include <thread>

#include <unistd.h>

#include "control/daemon.h"

namespace strata::cli {

using nlohmann::json;

void addConnectionOptions(CLI::App& command, DaemonConnection& connection) {
  connection.socket = control::defaultDaemonSocket();
  command.add_option("--daemon", connection.socket, "the daemon's socket ($STRATA_RUN_DIR/daemon.sock)")
      ->capture_default_str();
  command.add_option("--token", connection.token, "bearer token (default: $STRATA_TOKEN)");
  command.parse_complete_callback([&connection] {
    if (const char* token = std::getenv("STRATA_TOKEN"); connection.token.empty() && token) connection.token = token;
  });
}

void addConnectionAndOutputOptions(CLI::App& command, DaemonConnection& connection) {
  addConnectionOptions(command, connection);
  command.add_option("-o,--output", connection.output, "table or json")->check(CLI::IsMember({"table", "json"}));
}

std::string cell(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

std::optional<json> daemonRequest(const DaemonConnection& connection, const std::string& what,
                                  control::HttpRequest request) {
  request.bearerToken = connection.token;
  request.timeout = std::chrono::minutes(10);  // a shutdown waits for the guest
  auto reply = control::httpOverUnixSocket(connection.socket, request);
  if (!reply) {
    std::fprintf(stderr, "strata %s: cannot reach the daemon: %s\n", what.c_str(), reply.error().message.c_str());
    return std::nullopt;
  }
  json body = json::parse(reply->body, nullptr, false);
  if (reply->status >= 300) {
    std::string message = body.is_object() && body.contains("error") ? cell(body["error"]) : reply->body;
    std::fprintf(stderr, "strata %s: HTTP %d: %s\n", what.c_str(), reply->status, message.c_str());
    return std::nullopt;
  }
  return body.is_discarded() ? json(reply->body) : body;
}

int daemonCall(const DaemonConnection& connection, const std::string& what, control::HttpRequest request,
               void (*printForPeople)(const json&)) {
  auto body = daemonRequest(connection, what, std::move(request));
  if (!body) return 1;
  if (body->is_string()) std::fputs(cell(*body).c_str(), stdout);  // CSV: printed as the daemon sent it
  else if (connection.output == "json") std::printf("%s\n", body->dump(2).c_str());
  else printForPeople(*body);
  return 0;
}

std::optional<json> followOperation(const DaemonConnection& connection, const std::string& what,
                                    const std::string& id) {
  bool show = ::isatty(STDERR_FILENO) == 1;
  for (;;) {
    auto operation = daemonRequest(connection, what, {"GET", "/operations/" + id});
    if (!operation) return std::nullopt;
    if ((*operation)["state"] != "running") {
      if (show) std::fprintf(stderr, "\n");
      return operation;
    }
    if (show && (*operation)["total"].get<uint64_t>() > 0)
      std::fprintf(stderr, "\r%s: %.0f%%", what.c_str(),
                   100.0 * (*operation)["done"].get<double>() / (*operation)["total"].get<double>());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int finishOperation(const DaemonConnection& connection, const std::string& what, const json& started,
                    control::HttpRequest then, void (*printForPeople)(const json&)) {
  auto ended = followOperation(connection, what, cell(started["operation"]["id"]));
  if (!ended) return 1;
  if ((*ended)["state"] != "succeeded") {
    std::fprintf(stderr, "strata %s: %s\n", what.c_str(), cell(ended->value("error", json("failed"))).c_str());
    return 1;
  }
  return daemonCall(connection, what, std::move(then), printForPeople);
}

}  // namespace strata::cli
