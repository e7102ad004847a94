// SocketPort: a PacketPort over a connected SOCK_SEQPACKET UNIX socket, one
// Ethernet frame per message — how a VM process (`strata run --net switch=`)
// and `strata switch` exchange frames; both ends use this class. Also the small
// attach handshake a VM sends first (its VLANs and MAC) and the switch answers.
// Each message is a 10-byte virtio_net_hdr (the frame's FrameOffload) then the
// frame: both ends are strata, which finishes any offload its consumer lacks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "network/ethernet.h"
#include "network/fd_watch.h"
#include "network/packet_port.h"
#include "network/switch.h"

namespace strata::network {

// Largest frame a socket port carries: a 64 KiB frame plus an 802.1Q tag.
inline constexpr size_t kSocketPortMaxFrameBytes = 65535 + kVlanTagBytes;
inline constexpr size_t kSocketPortMaxMessageBytes = kVirtioNetHeaderBytes + kSocketPortMaxFrameBytes;

class SocketPort final : public PacketPort {
 public:
  // Takes a connected SOCK_SEQPACKET socket; switches it to non-blocking.
  SocketPort(UniqueFd fd, EventLoop& loop, std::string peerName);
  ~SocketPort() override;
  SocketPort(const SocketPort&) = delete;
  SocketPort& operator=(const SocketPort&) = delete;

  void send(std::span<const uint8_t> frame, const FrameOffload& offload) override;
  void setReceiveHandler(ReceiveHandler handler) override;
  void setReceiveEnabled(bool enabled) override;
  OffloadCaps acceptedOffloads() const override { return OffloadCaps::all(); }
  // Runs once when the peer hangs up or the socket fails (after which nothing is received).
  // The handler may not destroy the port synchronously: post that to the loop.
  void setClosedHandler(std::function<void()> handler) { closedHandler_ = std::move(handler); }

  bool closed() const { return closed_; }
  uint64_t framesSent() const { return framesSent_; }
  uint64_t sendsDropped() const { return sendsDropped_; }  // peer's queue full, or gone
  uint64_t oversizeDropped() const { return oversizeDropped_; }
  uint64_t malformedDropped() const { return malformedDropped_; }  // no header, or one that did not validate

 private:
  void onReadable();
  void updateWatch();
  void close();

  UniqueFd fd_;
  std::string peerName_;
  ReceiveHandler handler_;
  std::function<void()> closedHandler_;
  bool receiveEnabled_ = true;
  bool closed_ = false;
  std::vector<uint8_t> buffer_, sendBuffer_;
  uint64_t framesSent_ = 0, sendsDropped_ = 0, oversizeDropped_ = 0, malformedDropped_ = 0;
  FdWatch watch_;  // last: unregistered before fd_ closes
};

// The first message on a VM's connection, and the switch's answer.
struct AttachRequest {
  PortVlans vlans;
  std::optional<MacAddress> mac;
};
std::string encodeAttachRequest(const AttachRequest& request);
Result<AttachRequest> decodeAttachRequest(std::string_view message);

// Where switch NAME listens: $STRATA_RUN_DIR (default /run/strata)/switch-NAME.{sock,ctl}.
struct SwitchPaths {
  std::string ports;    // SOCK_SEQPACKET: VM ports attach here
  std::string control;  // SOCK_STREAM: flow and port management
};
Result<SwitchPaths> switchPaths(std::string_view switchName);

// VM side: connects to switch NAME, attaches with request, and waits (at most
// a few seconds) for the switch to accept. The returned port runs on loop.
Result<std::unique_ptr<SocketPort>> attachToSwitch(std::string_view switchName, const AttachRequest& request,
                                                   EventLoop& loop);

}  // namespace strata::network
