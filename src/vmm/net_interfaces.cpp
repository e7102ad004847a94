#include "vmm/net_interfaces.h"

#include <fcntl.h>

#include <fmt/core.h>

#include "base/log.h"
#include "network/socket_port.h"
#include "network/tap.h"
#include "virtio/net.h"

namespace strata::vmm {

Result<std::vector<NetInterface>> openNetInterfaces(const VmConfig& config, EventLoop& loop) {
  std::vector<NetInterface> nics;
  auto nextDefaultMac = [&nics] { return virtio::net::defaultMacAddress(static_cast<unsigned>(nics.size())); };
  for (const auto& tapName : config.tapDevices) {
    auto tap = network::TapDevice::open(tapName, loop);
    if (!tap) return Error{fmt::format("--net tap={}: {}", tapName, tap.error().message)};
    nics.push_back({std::move(*tap), nextDefaultMac()});
  }
  for (int tapFd : config.tapFds) {  // a copy: the caller keeps its descriptor
    auto tap = network::TapDevice::adopt(UniqueFd(::fcntl(tapFd, F_DUPFD_CLOEXEC, 0)), loop);
    if (!tap) return Error{fmt::format("--net tapfd={}: {}", tapFd, tap.error().message)};
    nics.push_back({std::move(*tap), nextDefaultMac()});
  }
  for (const auto& net : config.switchNets) {
    auto mac = net.mac.value_or(nextDefaultMac());
    auto port = network::attachToSwitch(net.switchName, {net.vlans, mac}, loop);
    if (!port) return Error{fmt::format("--net switch={}: {}", net.switchName, port.error().message)};
    (*port)->setClosedHandler([name = net.switchName] { log::warn("switch {} went away: NIC disconnected", name); });
    nics.push_back({std::move(*port), mac});
  }
  return nics;
}

}  // namespace strata::vmm
