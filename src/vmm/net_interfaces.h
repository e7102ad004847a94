// NetInterface: one of a VM's network interfaces — the frame port behind it
// (TAP device or switch connection) and its MAC address. runVm opens them once
// and every boot's virtio-net binds to the same ports, so a guest reboot keeps
// its switch port and TAP device (the sandbox would refuse opening them again).
// Each port counts its traffic (network/counting_port.h) for the VM's stats.
#pragma once

#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "network/counting_port.h"
#include "network/ethernet.h"
#include "network/packet_port.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

struct NetInterface {
  std::unique_ptr<network::PacketPort> port;
  network::MacAddress mac;
};

// The TAP interfaces (--net tap=, tapfd=) then the switch ones (--net switch=), in
// config order; their frames are handled on loop, which must outlive them.
// traffic: one counter set per NIC, in the same order, outliving the ports.
Result<std::vector<NetInterface>> openNetInterfaces(const VmConfig& config, EventLoop& loop,
                                                    std::vector<network::TrafficCounters>& traffic);

}  // namespace strata::vmm
