#include "vmm/snapshot_routes.h"

#include <fmt/core.h>

namespace strata::vmm {
namespace {

ApiReply takeSnapshot(VmControl& control, const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("dir") || !body["dir"].is_string() || body["dir"].get<std::string>().empty())
    return apiError(400, R"(expected {"dir": "DIR", "resume": true|false, "compress": true|false})");
  for (const char* flag : {"resume", "compress"})
    if (body.contains(flag) && !body[flag].is_boolean()) return apiError(400, fmt::format("\"{}\" must be true or false", flag));
  bool refused = false;
  auto state = control.snapshot(body["dir"].get<std::string>(), body.value("resume", true), body.value("compress", false), &refused);
  if (!state) return apiError(refused ? 409 : 500, state.error().message);
  return {200, {{"dir", body["dir"]}, {"state", vmStateName(*state)}}};
}

}  // namespace

void addSnapshotRoutes(ApiRouter& router, VmControl& control) {
  router.addRoute("PUT", "/vm/snapshot", [&control](const nlohmann::json& body) { return takeSnapshot(control, body); });
}

}  // namespace strata::vmm
