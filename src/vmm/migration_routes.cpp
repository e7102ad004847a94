#include "vmm/migration_routes.h"

#include <memory>

#include <fmt/core.h>

#include "vmm/migration_source.h"

namespace strata::vmm {
namespace {

constexpr const char* kUsage =
    R"(expected {"to": "tcp:HOST:PORT", "channels": 1-16, "compress": true|false, "downtime_ms": 1-60000, "auto_converge": true|false, "postcopy": true|false, "with_disks": true|false, "tls_ca": "CA-CERT.pem"})";

// Checks the body's shape and ranges; the migration itself reports through GET.
Result<MigrationRequest> parseRequest(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("to") || !body["to"].is_string()) return Error{kUsage};
  for (const auto& [key, value] : body.items())
    if (key != "to" && key != "channels" && key != "compress" && key != "downtime_ms" && key != "auto_converge" &&
        key != "postcopy" && key != "with_disks" && key != "tls_ca")
      return Error{fmt::format("unknown field '{}': {}", key, kUsage)};
  MigrationRequest request;
  auto to = migration::parseTcpAddress(body["to"].get<std::string>());
  if (!to) return to.error();
  request.to = *to;
  if (body.contains("channels")) {
    if (!body["channels"].is_number_unsigned() || body["channels"].get<uint64_t>() < 1 ||
        body["channels"].get<uint64_t>() > migration::kMaxChannels)
      return Error{fmt::format("\"channels\" must be between 1 and {}", migration::kMaxChannels)};
    request.channels = body["channels"].get<unsigned>();
  }
  if (body.contains("downtime_ms")) {
    if (!body["downtime_ms"].is_number_unsigned() || body["downtime_ms"].get<uint64_t>() < 1 ||
        body["downtime_ms"].get<uint64_t>() > 60000)
      return Error{"\"downtime_ms\" must be between 1 and 60000"};
    request.downtimeLimitMs = body["downtime_ms"].get<uint64_t>();
  }
  if (body.contains("tls_ca")) {
    if (!body["tls_ca"].is_string()) return Error{"\"tls_ca\" must be a path"};
    auto authority = storage::nbd::TlsCredentials::loadAuthority(body["tls_ca"].get<std::string>());
    if (!authority) return Error{"\"tls_ca\": " + authority.error().message};
    request.tlsAuthority = std::move(*authority);
  }
  for (auto [key, flag] : {std::pair<const char*, bool*>{"compress", &request.compress}, {"auto_converge", &request.autoConverge},
                           {"postcopy", &request.postcopy}, {"with_disks", &request.withDisks}}) {
    if (!body.contains(key)) continue;
    if (!body[key].is_boolean()) return Error{fmt::format("\"{}\" must be true or false", key)};
    *flag = body[key].get<bool>();
  }
  return request;
}

}  // namespace

void addMigrationRoutes(ApiRouter& router, VmControl& control) {
  auto migration = std::make_shared<OutgoingMigration>(control);
  router.addRoute("PUT", "/vm/migrate", [migration](const nlohmann::json& body) {
    auto request = parseRequest(body);
    if (!request) return apiError(400, request.error().message);
    if (auto started = migration->start(*request); !started) return apiError(409, started.error().message);
    return ApiReply{202, migration->progress().toJson()};
  });
  router.addRoute("GET", "/vm/migrate", [migration](const nlohmann::json&) {
    return ApiReply{200, migration->progress().toJson()};
  });
}

}  // namespace strata::vmm
