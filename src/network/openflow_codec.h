// OpenFlow 1.3 matches, instructions and actions <-> strata's FlowMatch and
// FlowAction: an ofp_match of OXM fields (in_port, eth_src/dst with masks,
// eth_type, vlan_vid, ip_proto, ipv4/ipv6 src/dst as prefixes, tcp/udp ports)
// and APPLY_ACTIONS (OUTPUT, PUSH/POP_VLAN, SET_FIELD vlan_vid). Decoding checks
// every length and prerequisite and names the OFPT_ERROR to send when it refuses.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "network/flow_table.h"
#include "network/openflow_wire.h"

namespace strata::network::openflow {

// Reads one ofp_match (with its padding) at the reader's position.
std::optional<Failure> decodeMatch(Reader& reader, FlowMatch& match);
// An instruction list (what follows a FLOW_MOD's match). No instructions: drop.
std::optional<Failure> decodeInstructions(std::span<const uint8_t> bytes, std::vector<FlowAction>& actions);
// An action list. toTable non-null (PACKET_OUT): OUTPUT:TABLE is allowed and sets it.
std::optional<Failure> decodeActions(std::span<const uint8_t> bytes, std::vector<FlowAction>& actions,
                                     bool* toTable = nullptr);

void encodeMatch(Writer& out, const FlowMatch& match);
void encodeInPortMatch(Writer& out, uint32_t port);
void encodeInstructions(Writer& out, const std::vector<FlowAction>& actions);
// Whether a rule's actions send to OpenFlow port number `port` (FLOW_MOD/FLOW stats out_port filters).
bool outputsTo(const std::vector<FlowAction>& actions, uint32_t port);

}  // namespace strata::network::openflow
