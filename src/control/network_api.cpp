#include "control/network_api.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/crc32.h"
#include "control/api_call.h"
#include "control/supervisor.h"
#include "network/switch_service.h"

namespace strata::control {
namespace {

using nlohmann::json;

constexpr auto kSwitchStartWait = std::chrono::seconds(10);
const std::string kDefaultTenant = "default";

json networkJson(const NetworkRecord& network) {
  return {{"name", network.name}, {"tenant", network.tenant}, {"vlan", network.vlan}};
}

// A locally administered unicast MAC from the VM's name and NIC: every VM
// would otherwise get strata run's one default address, and peers on a
// network must differ.
std::string nicAddress(const std::string& vm, size_t nic) {
  uint64_t bits = std::hash<std::string>{}(fmt::format("{}/{}", vm, nic));
  return fmt::format("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", (bits >> 32) & 0xff, (bits >> 24) & 0xff,
                     (bits >> 16) & 0xff, (bits >> 8) & 0xff, bits & 0xff);
}

// The switch's ports as its control socket lists them, or an error if it does not answer.
Result<json> switchPorts(const std::string& name) {
  auto reply = network::sendSwitchRequest(name, "port-list json");
  if (!reply) return reply.error();
  json ports = json::parse(*reply, nullptr, false);
  if (!ports.is_object() || !ports["ports"].is_array()) return Error{"the host switch's port list is not JSON"};
  return ports["ports"];
}

}  // namespace

NetworkApi::NetworkApi(Store& store, std::shared_ptr<EventBus> events, std::string dataDir, std::string strataBinary)
    : store_(store),
      events_(std::move(events)),
      dataDir_(std::move(dataDir)),
      strataBinary_(std::move(strataBinary)),
      hostSwitch_(fmt::format("host-{:08x}", crc32Update(0, dataDir_.data(), dataDir_.size()))) {}

Result<void> NetworkApi::ensureSwitch() {
  std::lock_guard lock(switchMutex_);
  if (switchPorts(hostSwitch_)) return {};
  auto spawned = spawnDetached({strataBinary_, "switch", hostSwitch_}, runDir(dataDir_) + "/switch.log");
  if (!spawned) return spawned.error();
  std::ofstream(runDir(dataDir_) + "/switch.pid") << *spawned << " " << processStartTime(*spawned).value_or(0) << "\n";
  for (auto deadline = std::chrono::steady_clock::now() + kSwitchStartWait; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(50)))
    if (switchPorts(hostSwitch_)) return {};
  return Error{fmt::format("the host switch did not start (see {}/switch.log)", runDir(dataDir_))};
}

std::optional<NetworkRecord> NetworkApi::visibleNetwork(Call& call, const std::string& name) {
  auto found = isValidName(name) ? store_.network(name) : std::nullopt;
  if (!found || (!call.principal.admin && found->tenant != call.principal.tenant)) {
    call.fail(404, fmt::format("no network {}", name));
    return std::nullopt;
  }
  return found;
}

bool NetworkApi::resolveNetworks(Call& call, VmSpec& spec) {
  for (size_t i = 0; i < spec.networks.size(); ++i) {
    auto found = store_.network(spec.networks[i]);
    if (!found || found->tenant != spec.tenant)
      return call.fail(404, fmt::format("no network {}", spec.networks[i])), false;
    spec.nets.push_back(fmt::format("switch={},vlan={},mac={}", hostSwitch_, found->vlan, nicAddress(spec.name, i)));
  }
  if (spec.networks.empty()) return true;
  if (auto running = ensureSwitch(); !running) return call.fail(500, running.error().message), false;
  return true;
}

void NetworkApi::defineNetwork(Call& call) {
  auto body = call.body();
  if (!body) return;
  for (const auto& [key, value] : body->items())
    if (key != "name" && key != "tenant" && key != "vlan") return call.fail(400, fmt::format("unknown field '{}'", key));
  auto text = [&](const char* field) {
    return body->value(field, json()).is_string() ? (*body)[field].get<std::string>() : std::string{};
  };
  NetworkRecord network{text("name"), text("tenant")};
  if (!isValidName(network.name)) return call.fail(400, "name: expected 1-63 letters, digits, '-' or '_' (not first)");
  if (network.tenant.empty()) network.tenant = call.principal.admin ? kDefaultTenant : call.principal.tenant;
  if (!call.principal.admin && network.tenant != call.principal.tenant)
    return call.fail(403, fmt::format("this token may define networks only for tenant {}", call.principal.tenant));
  if (body->contains("vlan")) {  // an admin's choice, e.g. to meet a VLAN of the physical network
    auto vlan = nonNegativeInteger((*body)["vlan"]);
    if (!vlan || *vlan < 1 || *vlan > 4094) return call.fail(400, "vlan: expected an integer from 1 to 4094");
    if (!call.principal.admin) return call.fail(403, "vlan: only an admin chooses a network's VLAN");
    network.vlan = static_cast<unsigned>(*vlan);
  }
  if (auto outcome = store_.addNetwork(network); !outcome.ok()) return call.refuse(outcome);
  if (auto running = ensureSwitch(); !running) return call.fail(500, running.error().message);
  events_->publish(network.tenant, "network", json{{"network", network.name}, {"tenant", network.tenant}, {"state", "defined"}});
  call.reply(201, networkJson(network));
}

void NetworkApi::listNetworks(Call& call) {
  json list = json::array();
  auto tenant = call.principal.admin ? std::nullopt : std::optional(call.principal.tenant);
  for (const auto& network : store_.networks(tenant)) list.push_back(networkJson(network));
  call.reply(200, list);
}

// With the switch ports of the network's VMs that run, and their counters (bytes from and to each VM).
void NetworkApi::getNetwork(Call& call) {
  auto found = visibleNetwork(call, call.arg(1));
  if (!found) return;
  json result = networkJson(*found);
  json attached = json::array();
  auto ports = switchPorts(hostSwitch_);
  for (const auto& vm : store_.vms(found->tenant)) {
    if (vm.state == VmState::Stopped || !ports ||
        std::find(vm.spec.networks.begin(), vm.spec.networks.end(), found->name) == vm.spec.networks.end())
      continue;
    for (const auto& port : *ports)
      if (port.value("name", "") == fmt::format("vm-{}", vm.pid) && port.value("vlans", "") == fmt::format("vlan={}", found->vlan))
        attached.push_back({{"vm", vm.spec.name},
                            {"mac", port["mac"]},
                            {"rx_bytes", port["rx_bytes"]},
                            {"tx_bytes", port["tx_bytes"]},
                            {"rx_packets", port["rx_packets"]},
                            {"tx_packets", port["tx_packets"]}});
  }
  result["ports"] = attached;
  result["switch"] = ports ? "running" : "down";
  call.reply(200, result);
}

// With no network left, nothing needs the host switch (no VM may be attached to it): it is stopped.
void NetworkApi::stopUnusedSwitch() {
  std::lock_guard lock(switchMutex_);
  if (!store_.networks(std::nullopt).empty()) return;
  std::ifstream file(runDir(dataDir_) + "/switch.pid");
  pid_t pid = 0;
  uint64_t startTime = 0;
  if (file >> pid >> startTime && pid > 0 && processStartTime(pid) == startTime) ::kill(pid, SIGTERM);
}

void NetworkApi::deleteNetwork(Call& call) {
  auto found = visibleNetwork(call, call.arg(1));
  if (!found) return;
  if (auto outcome = store_.deleteNetwork(found->name); !outcome.ok()) return call.refuse(outcome);
  stopUnusedSwitch();
  events_->publish(found->tenant, "network", json{{"network", found->name}, {"tenant", found->tenant}, {"state", "deleted"}});
  call.reply(200, json{{"deleted", found->name}});
}

const std::vector<MemberRoute<NetworkApi>>& networkRoutes() {
  using N = NetworkApi;
  static const std::vector<MemberRoute<NetworkApi>> table = {
      {{"GET", "/networks"}, Access::Token, &N::listNetworks},
      {{"POST", "/networks"}, Access::Token, &N::defineNetwork},
      {{"GET", "/networks/{network}"}, Access::Token, &N::getNetwork},
      {{"DELETE", "/networks/{network}"}, Access::Token, &N::deleteNetwork},
  };
  return table;
}

}  // namespace strata::control
