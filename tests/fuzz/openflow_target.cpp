// The bytes as what an OpenFlow controller sends `strata switch --openflow`:
// a TCP byte stream framed and handled by an OpenFlowSession on a switch with
// three ports, as OpenFlowServer does; then a few frames (IPv4/UDP, ARP, a
// tagged IPv6 one) go through the switch, meeting whatever rules the stream
// installed (outputs, VLAN actions, PACKET_IN to the session).
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "network/openflow_session.h"
#include "network/switch.h"

namespace strata::fuzz {
namespace {

class NullPort : public network::PacketPort {
 public:
  void send(std::span<const uint8_t>, const network::FrameOffload&) override {}
  void setReceiveHandler(ReceiveHandler handler) override { handler_ = std::move(handler); }
  void setReceiveEnabled(bool) override {}

 private:
  ReceiveHandler handler_;
};

std::vector<uint8_t> frame(uint16_t etherType, int vlan, size_t payload) {
  std::vector<uint8_t> out = {0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1};
  auto push16 = [&](unsigned value) {
    out.push_back(static_cast<uint8_t>(value >> 8));
    out.push_back(static_cast<uint8_t>(value));
  };
  if (vlan >= 0) {
    push16(network::kEtherTypeVlan);
    push16(static_cast<unsigned>(vlan));
  }
  push16(etherType);
  size_t l3 = out.size();
  out.resize(l3 + payload, 0);
  if (etherType == network::kEtherTypeIpv4) {  // UDP 5000 -> 53, 10.0.0.1 -> 10.0.0.2
    const uint8_t header[] = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1,
                              10,   0, 0, 2,  0x13, 0x88, 0, 53};
    std::copy(std::begin(header), std::end(header), out.begin() + static_cast<ptrdiff_t>(l3));
  } else if (etherType == network::kEtherTypeIpv6) {
    out[l3] = 0x60;
    out[l3 + 6] = 6;  // next header: TCP
  }
  return out;
}

}  // namespace

int openFlowOneInput(const uint8_t* data, size_t size) {
  quietLogs();
  network::Switch sw;
  NullPort ports[3];
  uint16_t trunkVlans[] = {10, 20};
  (void)sw.addPort("a", ports[0], network::PortVlans::access(10));
  (void)sw.addPort("b", ports[1], network::PortVlans::access(10));
  (void)sw.addPort("t", ports[2], network::PortVlans::trunk(trunkVlans, 10));
  std::vector<uint8_t> out;
  network::OpenFlowSession session(sw, "fuzz", out);
  sw.setControllerHandler([&](const network::PacketToController& packet) { session.packetIn(packet); });
  session.start();
  bool open = true;
  std::span<const uint8_t> stream(data, size);
  // Replies are dropped as they come, as a controller reading them would.
  size_t used = session.consume(stream, [&] { out.clear(); return true; }, open);
  if (used > size) std::abort();
  sw.receive(1, frame(network::kEtherTypeIpv4, -1, 28));
  sw.receive(2, frame(network::kEtherTypeArp, -1, 28));
  sw.receive(3, frame(network::kEtherTypeIpv6, 20, 48));  // tagged, on the trunk
  return 0;
}

}  // namespace strata::fuzz
