#include "vmm/net_interfaces.h"

#include <fcntl.h>

#include <random>

#include <fmt/core.h>

#include "base/log.h"
#include "network/socket_port.h"
#include "network/tap.h"
#include "virtio/net.h"

namespace strata::vmm {
namespace {

// A clone's NICs get new random addresses (locally administered, unicast):
// each copy of the snapshot is its own host on the network.
network::MacAddress randomLocalMac() {
  network::MacAddress mac{};
  std::random_device source;
  for (auto& byte : mac) byte = static_cast<uint8_t>(source());
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);
  return mac;
}

}  // namespace

Result<std::vector<NetInterface>> openNetInterfaces(const VmConfig& config, EventLoop& loop,
                                                    std::vector<network::TrafficCounters>& traffic) {
  std::vector<NetInterface> nics;
  // The address of the next NIC that has none configured; a clone's NICs all get new ones.
  auto nextMac = [&] {
    return config.clone ? randomLocalMac() : virtio::net::defaultMacAddress(static_cast<unsigned>(nics.size()));
  };
  auto add = [&](std::unique_ptr<network::PacketPort> port, network::MacAddress mac) {
    auto& counters = traffic.at(nics.size());
    nics.push_back({std::make_unique<network::CountingPort>(std::move(port), counters), mac});
  };
  for (const auto& tapName : config.tapDevices) {
    auto tap = network::TapDevice::open(tapName, loop);
    if (!tap) return Error{fmt::format("--net tap={}: {}", tapName, tap.error().message)};
    add(std::move(*tap), nextMac());
  }
  for (int tapFd : config.tapFds) {  // a copy: the caller keeps its descriptor
    auto tap = network::TapDevice::adopt(UniqueFd(::fcntl(tapFd, F_DUPFD_CLOEXEC, 0)), loop);
    if (!tap) return Error{fmt::format("--net tapfd={}: {}", tapFd, tap.error().message)};
    add(std::move(*tap), nextMac());
  }
  for (const auto& net : config.switchNets) {
    auto mac = net.mac && !config.clone ? *net.mac : nextMac();
    auto port = network::attachToSwitch(net.switchName, {net.vlans, mac}, loop);
    if (!port) return Error{fmt::format("--net switch={}: {}", net.switchName, port.error().message)};
    (*port)->setClosedHandler([name = net.switchName] { log::warn("switch {} went away: NIC disconnected", name); });
    add(std::move(*port), mac);
  }
  return nics;
}

}  // namespace strata::vmm
