// Switch: strata's VLAN-aware virtual switch, the data plane without I/O.
// Ports are PacketPorts (TAP, UNIX-socket VM ports, VXLAN, test doubles); a
// frame received on one is classified into a VLAN (access/trunk rules), learned
// from, matched against the FlowTable, and forwarded — by the matching rule's
// actions, or by MAC learning and per-VLAN flooding when no rule matches.
// Single-threaded: every call, and every port callback, on one loop thread.
#pragma once

#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "network/flow_table.h"
#include "network/mac_table.h"
#include "network/packet_port.h"

namespace strata::network {

// Which VLANs a port carries and how they look on its wire.
struct PortVlans {
  enum class Mode : uint8_t { Access, Trunk };
  Mode mode = Mode::Access;
  uint16_t accessVlan = 1;        // access: its one VLAN, untagged on the wire
  std::bitset<4096> allowed;      // trunk: VLANs carried tagged
  uint16_t nativeVlan = 0;        // trunk: VLAN carried untagged (0: untagged frames are dropped)

  static PortVlans access(uint16_t vlan);
  static PortVlans trunk(std::span<const uint16_t> vlans, uint16_t nativeVlan = 0);
  bool carries(uint16_t vlan) const;
  // "vlan=10", "trunk=10,20,30-39" with optional "native=1" (comma separated); "" is access VLAN 1.
  static Result<PortVlans> parse(std::string_view text);
  std::string describe() const;  // in the same syntax
};

struct PortCounters {
  uint64_t rxPackets = 0, rxBytes = 0;
  uint64_t txPackets = 0, txBytes = 0;
  uint64_t rxDropped = 0;  // malformed, or a VLAN this port does not carry
};

// Why frames were dropped, switch-wide.
struct DropCounters {
  uint64_t runt = 0;            // shorter than an Ethernet (or tagged Ethernet) header
  uint64_t oversize = 0;        // longer than Options::maxFrameBytes
  uint64_t badVlanTag = 0;      // VID 4095, stacked/802.1ad tags
  uint64_t badSourceMac = 0;    // group address as source
  uint64_t vlanNotAllowed = 0;  // tagged on an access port, VLAN not in a trunk's list, untagged without native
  uint64_t byRule = 0;          // a flow rule's drop (or empty action list)
  uint64_t learningFull = 0;    // source not learned: the MAC table was full
  uint64_t badOffload = 0;      // checksum field outside the frame or its L3 part, GSO headers that do not parse
};

// A frame a rule's Controller action (or PACKET_OUT) hands to the OpenFlow controller.
struct PacketToController {
  PortId inPort;                   // 0: the frame came from the controller itself
  std::span<const uint8_t> frame;  // as received
  bool tableMiss;                  // sent by a priority-0 (table-miss) rule
  uint64_t cookie;                 // of that rule
  uint16_t maxLen;                 // bytes of frame the action asked for
};

// Lookups and hits of the flow table (OpenFlow table statistics).
struct TableCounters {
  uint64_t lookups = 0;
  uint64_t matched = 0;
};

class Switch {
 public:
  struct Options {
    size_t macTableLimit = 8192;
    uint64_t macAgingMs = 300'000;
    size_t maxFrameBytes = 65535 + kVlanTagBytes;
    std::function<uint64_t()> clockMs;  // monotonic milliseconds; default: steady_clock
  };
  struct PortInfo {
    PortId id;
    std::string name;
    PortVlans vlans;
    PortCounters counters;
    std::optional<PortId> mirrorTo;
  };

  Switch();
  explicit Switch(Options options);
  ~Switch();
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;

  // Attaches port (which must outlive its attachment) and starts taking its frames.
  // Ids start at 1 and the lowest free one is reused. Names must be unique.
  Result<PortId> addPort(std::string name, PacketPort& port, PortVlans vlans);
  // Detaches the port: stops its frames, forgets its MACs and mirrors to it. Rules naming it stay.
  void removePort(PortId id);
  std::optional<PortId> portByName(std::string_view name) const;
  std::vector<PortInfo> ports() const;
  std::optional<PortInfo> port(PortId id) const;

  // SPAN: a copy of every frame port `source` receives or sends, as on its wire, goes to
  // `destination` (nullopt stops it). Mirror copies are not mirrored again.
  Result<void> setMirror(PortId source, std::optional<PortId> destination);

  // One frame arriving on port `in` (what the port's receive handler calls). The offload
  // travels with the frame to ports that accept it; others get it finished in software.
  void receive(PortId in, std::span<const uint8_t> frame, const FrameOffload& offload = {});
  // Ages out stale MAC entries; call now and then (e.g. every few seconds).
  void expireMacs();
  // Applies actions to a frame that comes from the controller (OpenFlow PACKET_OUT) as if it had
  // arrived on `in` (nullopt: from the controller; an untagged frame is then on VLAN 1).
  Result<void> inject(std::optional<PortId> in, std::span<const uint8_t> frame,
                      const std::vector<FlowAction>& actions);
  // Where Controller actions deliver frames; none: such frames are dropped.
  void setControllerHandler(std::function<void(const PacketToController&)> handler);
  uint64_t nowMs() const { return options_.clockMs(); }

  FlowTable& flows() { return flows_; }
  const FlowTable& flows() const { return flows_; }
  const MacTable& macTable() const { return macs_; }
  const DropCounters& drops() const { return drops_; }
  const TableCounters& tableCounters() const { return table_; }

 private:
  struct Port;
  class Egress;

  Port* portAt(PortId id) const;
  // `in` is null for frames from the controller.
  void forwardNormal(Port* in, Egress& egress, uint16_t vlan);
  void flood(Port* in, Egress& egress, uint16_t vlan, bool anyVlan = false);
  void applyActions(Port* in, Egress& egress, const std::vector<FlowAction>& actions, const FlowRule* rule,
                    uint16_t vlan);
  void transmit(Port& out, Egress& egress, uint16_t vlan);
  void sendMirrorCopy(const Port& watched, std::span<const uint8_t> wire, const FrameOffload& offload);
  void sendTo(Port& out, std::span<const uint8_t> wire, const FrameOffload& offload);
  void dropOnPort(Port& in, uint64_t& reason);

  Options options_;
  std::vector<std::unique_ptr<Port>> ports_;  // index = id - 1; null where free
  MacTable macs_;
  FlowTable flows_;
  DropCounters drops_;
  TableCounters table_;
  std::function<void(const PacketToController&)> toController_;
  uint64_t nowMs_ = 0;  // clock read once per received frame
};

}  // namespace strata::network
