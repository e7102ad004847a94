// OpenFlowSession: the OpenFlow 1.3 protocol for one controller connection,
// without I/O. It takes whole messages (framed by OpenFlowServer), answers into
// an output buffer, and acts on the Switch: HELLO/ECHO/FEATURES/CONFIG/BARRIER,
// FLOW_MOD on the switch's one FlowTable, multipart DESC/FLOW/AGGREGATE/TABLE/
// TABLE_FEATURES/PORT_STATS/PORT_DESC, PACKET_OUT, and PACKET_IN for Controller actions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "network/openflow_wire.h"
#include "network/switch.h"

namespace strata::network {

class OpenFlowSession {
 public:
  // Replies are appended to `out` (owned by the connection).
  OpenFlowSession(Switch& fabric, std::string switchName, std::vector<uint8_t>& out);

  // Queues the switch's HELLO; call once when the connection opens.
  void start();
  // Handles the complete messages at the front of a received byte stream, one at a time while
  // mayContinue() holds; returns how many bytes it used. open turns false when the connection must
  // close: a HELLO that fails, or a length below the header's (which cannot be skipped over).
  size_t consume(std::span<const uint8_t> stream, const std::function<bool()>& mayContinue, bool& open);
  // One message whose header length equals message.size() (>= 8). false: close the connection.
  bool handle(std::span<const uint8_t> message);
  // Queues a PACKET_IN; ignored before the version is agreed.
  void packetIn(const PacketToController& packet);
  // Queues a PORT_STATUS (a port attached or went away); ignored before the version is agreed.
  void portStatus(bool added, const Switch::PortInfo& port);
  bool negotiated() const { return negotiated_; }

 private:
  void header(uint8_t type, uint32_t xid, size_t length);
  void error(std::span<const uint8_t> request, openflow::Failure failure);
  bool hello(std::span<const uint8_t> message);
  void features(uint32_t xid);
  void getConfig(uint32_t xid);
  std::optional<openflow::Failure> flowMod(std::span<const uint8_t> message);
  std::optional<openflow::Failure> packetOut(std::span<const uint8_t> message);
  std::optional<openflow::Failure> multipart(std::span<const uint8_t> message);
  // Multipart replies: begin() starts a message, items are appended, end() patches lengths;
  // a reply too big for one message is split with OFPMPF_REPLY_MORE.
  size_t beginMultipart(uint32_t xid, uint16_t type);
  void endMultipart(size_t start, bool more);
  std::optional<openflow::Failure> flowStats(uint32_t xid, std::span<const uint8_t> body, bool aggregate);
  void portStats(uint32_t xid, uint32_t port);
  void portDesc(uint32_t xid);
  void putPort(const Switch::PortInfo& port);  // an ofp_port
  void desc(uint32_t xid);
  void tableStats(uint32_t xid);
  void tableFeatures(uint32_t xid);

  Switch& switch_;
  std::string name_;
  std::vector<uint8_t>& out_;
  bool negotiated_ = false;
  uint16_t configFlags_ = 0;
  uint16_t missSendLen_ = 128;
};

}  // namespace strata::network
