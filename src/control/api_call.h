// Call: one REST request being answered (who asks, what, the reply), and who
// may ask for a route; shared by api_server.cpp and the units that answer
// routes of their own (storage_api, network_api).
#pragma once

#include <optional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "control/api_route.h"
#include "control/store.h"

namespace strata::control {

// A reply's JSON text. Messages quote what the client sent (a path, a name), which need not be
// UTF-8: dump() would throw, and from httplib's error handler that ended the daemon.
inline std::string jsonText(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One request being answered: who asks, what, and the reply.
struct Call {
  Principal principal;
  const httplib::Request& request;
  httplib::Response& response;

  std::string arg(size_t index) const { return request.matches[index]; }
  void reply(int status, const nlohmann::json& body) { response.status = status, response.set_content(jsonText(body), "application/json"); }
  void fail(int status, const std::string& message) { reply(status, nlohmann::json{{"error", message}}); }
  void refuse(const Outcome& outcome) {
    static const int statuses[] = {200, 404, 409, 403};
    fail(statuses[outcome.status], outcome.message);
  }
  // The body as a JSON object, or a 400 reply and nullopt.
  std::optional<nlohmann::json> body() {
    nlohmann::json parsed = nlohmann::json::parse(request.body, nullptr, false);
    if (parsed.is_discarded()) return fail(400, "request body is not valid JSON"), std::nullopt;
    if (!parsed.is_object()) return fail(400, "request body must be a JSON object"), std::nullopt;
    return parsed;
  }
};

}  // namespace strata::control
