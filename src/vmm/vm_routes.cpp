#include "vmm/vm_routes.h"

#include <fmt/core.h>

#include "vmm/balloon_routes.h"
#include "vmm/migration_routes.h"
#include "vmm/snapshot_routes.h"

namespace strata::vmm {
namespace {

nlohmann::json describeConfig(const VmConfig& config) {
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& disk : config.disks)
    disks.push_back({{"path", disk.path}, {"read_only", disk.readOnly}, {"format", storage::formatName(disk.format)}});
  nlohmann::json nets = nlohmann::json::array();
  for (const auto& tap : config.tapDevices) nets.push_back({{"tap", tap}});
  for (int fd : config.tapFds) nets.push_back({{"tap_fd", fd}});
  for (const auto& net : config.switchNets) nets.push_back({{"switch", net.switchName}});
  return {{"kernel", config.kernel},       {"initrd", config.initrd},
          {"firmware", config.firmware},   {"bare_program", config.bareProgram},
          {"command_line", config.commandLine}, {"disks", disks},
          {"nets", nets},                  {"engine", cpu::engineName(config.engine.kind)}};
}

// --mem-merge: the pages of this VM the host's KSM merged, where the host says.
void addPageSharing(nlohmann::json& reply, const VmControl& control) {
  if (const auto* sharing = control.pageSharing())
    if (auto pages = sharing->mergedPages()) reply["ksm_merging_pages"] = *pages;
}

ApiReply describeVm(VmControl& control) {
  const VmConfig& config = control.config();
  nlohmann::json reply = {{"state", vmStateName(control.state())},
                          {"uptime_s", control.uptimeSeconds()},
                          {"vcpus", config.cpus},
                          {"memory_bytes", config.memoryBytes},
                          {"config", describeConfig(config)}};
  if (control.postcopyPaused()) reply["migration"] = "postcopy-paused";
  addPageSharing(reply, control);
  return {200, reply};
}

ApiReply changeState(VmControl& control, const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("action") || !body["action"].is_string())
    return apiError(400, R"(expected {"action": "pause" | "resume" | "shutdown" | "reset"})");
  const std::string action = body["action"].get<std::string>();
  // A vCPU may wait in a fault for a page the lost source holds: it never parks or restarts.
  if (control.postcopyPaused() && (action == "pause" || action == "reset"))
    return apiError(409, fmt::format("post-copy migration is paused, some pages are still at the source: a {} would "
                                     "wait for them forever; only shutdown ends this VM",
                                     action));
  VmState state;
  if (action == "pause") state = control.pause();
  else if (action == "resume") state = control.resume();
  else if (action == "shutdown") state = control.shutdown();
  else if (action == "reset") state = control.reset();
  else return apiError(400, fmt::format("unknown action '{}': pause, resume, shutdown or reset", action));
  return {200, {{"state", vmStateName(state)}}};
}

ApiReply describeStats(VmControl& control) {
  nlohmann::json harts = nlohmann::json::array();
  for (const auto& hart : control.stats().harts) {
    nlohmann::json engine = nlohmann::json::object();
    for (const auto& stat : hart.engine) engine[stat.name] = stat.value;
    harts.push_back({{"id", hart.id}, {"instret", hart.instructionsRetired}, {"engine", engine}});
  }
  nlohmann::json nets = nlohmann::json::array();
  for (const auto& counters : control.nicTraffic()) {
    network::PortTraffic traffic = counters.read();
    nets.push_back({{"rx_bytes", traffic.rxBytes},
                    {"rx_frames", traffic.rxFrames},
                    {"tx_bytes", traffic.txBytes},
                    {"tx_frames", traffic.txFrames}});
  }
  nlohmann::json reply = {{"state", vmStateName(control.state())},
                          {"engine", cpu::engineName(control.config().engine.kind)},
                          {"harts", harts},
                          {"nets", nets}};
  addPageSharing(reply, control);
  return {200, reply};
}

}  // namespace

void addVmRoutes(ApiRouter& router, VmControl& control) {
  router.addRoute("GET", "/vm", [&control](const nlohmann::json&) { return describeVm(control); });
  router.addRoute("PUT", "/vm/state", [&control](const nlohmann::json& body) { return changeState(control, body); });
  router.addRoute("GET", "/vm/stats", [&control](const nlohmann::json&) { return describeStats(control); });
}

void addApiRoutes(ApiRouter& router, VmControl& control) {
  addVmRoutes(router, control);
  addBalloonRoutes(router, control.balloon());
  addSnapshotRoutes(router, control);
  addMigrationRoutes(router, control);
}

}  // namespace strata::vmm
