#include "vmm/balloon_routes.h"

namespace strata::vmm {
namespace {

ApiReply describeBalloon(const BalloonControl& balloon) {
  if (!balloon.present()) return apiError(404, "this VM has no balloon device (start it with --balloon)");
  nlohmann::json reply = {{"target_bytes", balloon.targetBytes()}};
  auto status = balloon.status();
  reply["device_active"] = status.has_value();  // false while the guest reboots
  if (auto automatic = balloon.autoState()) {
    const BalloonPolicyConfig& config = automatic->config;
    reply["auto"] = {{"host_free_bytes", config.hostFreeBytes}, {"min_bytes", config.minBytes},
                     {"max_bytes", config.maxBytes},           {"guest_free_bytes", config.guestFreeBytes},
                     {"step_bytes", config.stepBytes},         {"last_move", balloonMoveName(automatic->lastMove)},
                     {"moves", automatic->moves}};
  }
  if (!status) return {200, reply};
  reply["actual_bytes"] = status->actualBytes;
  reply["inflated_bytes"] = status->inflatedBytes;
  reply["reported_bytes"] = status->reportedBytes;
  reply["refused_pfns"] = status->refusedPfns;
  reply["duplicate_pfns"] = status->duplicatePfns;
  reply["malformed_requests"] = status->malformedRequests;
  reply["discard_errors"] = status->discardErrors;
  nlohmann::json statistics = nlohmann::json::object();
  for (unsigned tag = 0; tag < virtio::balloon::kStatTagCount; ++tag)
    if (const auto& value = status->statistics.values[tag]) statistics[std::string(virtio::balloon::statName(tag))] = *value;
  reply["statistics"] = statistics;
  reply["statistics_updates"] = status->statistics.updates;
  return {200, reply};
}

ApiReply setBalloonTarget(BalloonControl& balloon, const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("target_bytes") || !body["target_bytes"].is_number_unsigned())
    return apiError(400, R"(expected {"target_bytes": N} with N a byte count)");
  if (!balloon.present()) return apiError(404, "this VM has no balloon device (start it with --balloon)");
  if (auto set = balloon.setTarget(body["target_bytes"].get<uint64_t>()); !set) return apiError(400, set.error().message);
  return {200, {{"target_bytes", balloon.targetBytes()}}};
}

}  // namespace

void addBalloonRoutes(ApiRouter& router, BalloonControl& balloon) {
  router.addRoute("GET", "/vm/balloon", [&balloon](const nlohmann::json&) { return describeBalloon(balloon); });
  router.addRoute("PUT", "/vm/balloon",
                  [&balloon](const nlohmann::json& body) { return setBalloonTarget(balloon, body); });
}

}  // namespace strata::vmm
