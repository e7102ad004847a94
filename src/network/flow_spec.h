// The text form of flow rules, close to Open vSwitch's ovs-ofctl syntax:
//   priority=200,in_port=vm1,tcp,nw_dst=10.0.0.0/24,tp_dst=22,actions=drop
// Used by `strata switch flow add|list` and the switch's control socket.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "network/flow_table.h"

namespace strata::network {

inline constexpr uint16_t kDefaultFlowPriority = 32768;

// Maps a port named in a rule (a number or a port name) to its id.
using PortResolver = std::function<std::optional<PortId>(std::string_view)>;

// Fields: priority, in_port, dl_src, dl_dst, dl_vlan, dl_type, nw_src, nw_dst,
// ipv6_src, ipv6_dst, nw_proto, tp_src, tp_dst, and the shorthands ip, ipv6, arp,
// icmp, icmp6, tcp, udp, tcp6, udp6. `actions=` comes last: output:P, flood,
// normal, drop, set_vlan:N (or mod_vlan_vid:N), strip_vlan, mirror:P, all, controller.
// dl_src/dl_dst take an optional /MASK (a MAC).
Result<FlowRule> parseFlowRule(std::string_view text, const PortResolver& resolvePort);
std::string formatFlowMatch(const FlowMatch& match);  // "" when it matches everything
std::string formatFlowActions(const std::vector<FlowAction>& actions);

}  // namespace strata::network
