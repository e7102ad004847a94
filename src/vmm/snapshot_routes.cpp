#include "vmm/snapshot_routes.h"

namespace strata::vmm {
namespace {

ApiReply takeSnapshot(VmControl& control, const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("dir") || !body["dir"].is_string() || body["dir"].get<std::string>().empty())
    return apiError(400, R"(expected {"dir": "DIR", "resume": true|false})");
  if (body.contains("resume") && !body["resume"].is_boolean()) return apiError(400, "\"resume\" must be true or false");
  bool resume = body.value("resume", true);
  auto state = control.snapshot(body["dir"].get<std::string>(), resume);
  if (!state) return apiError(500, state.error().message);
  return {200, {{"dir", body["dir"]}, {"state", vmStateName(*state)}}};
}

}  // namespace

void addSnapshotRoutes(ApiRouter& router, VmControl& control) {
  router.addRoute("PUT", "/vm/snapshot", [&control](const nlohmann::json& body) { return takeSnapshot(control, body); });
}

}  // namespace strata::vmm
