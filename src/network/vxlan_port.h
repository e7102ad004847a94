// VxlanPort: a PacketPort that tunnels Ethernet frames over UDP as VXLAN
// (RFC 7348: an 8-byte header with the I flag and a 24-bit VNI) to one remote
// endpoint — another strata switch or a Linux kernel `vxlan` device — so one
// logical network spans hosts. Datagrams that are not valid VXLAN for this VNI
// (or come from another address than the remote) are dropped and counted.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "network/fd_watch.h"
#include "network/packet_port.h"

namespace strata::network {

inline constexpr uint16_t kVxlanDefaultPort = 4789;  // IANA
inline constexpr size_t kVxlanHeaderBytes = 8;

struct VxlanConfig {
  uint32_t vni = 0;  // 24 bits
  sockaddr_in local{};   // address and UDP port to bind
  sockaddr_in remote{};  // where frames go, and the only source accepted
};

// "remote=IP[:PORT],vni=N[,local=IP[:PORT]]" (ports default to 4789, local to 0.0.0.0).
// Words it does not know are left in `rest` (the caller's VLAN options), comma separated.
Result<VxlanConfig> parseVxlanConfig(std::string_view text, std::string& rest);

class VxlanPort final : public PacketPort {
 public:
  static Result<std::unique_ptr<VxlanPort>> open(const VxlanConfig& config, EventLoop& loop);
  ~VxlanPort() override;
  VxlanPort(const VxlanPort&) = delete;
  VxlanPort& operator=(const VxlanPort&) = delete;

  // Takes plain frames only (acceptedOffloads is empty): the remote may be a kernel vxlan device.
  void send(std::span<const uint8_t> frame, const FrameOffload& offload) override;
  void setReceiveHandler(ReceiveHandler handler) override;
  void setReceiveEnabled(bool enabled) override;

  uint16_t localPort() const;  // the bound UDP port (useful when binding port 0)
  uint64_t framesSent() const { return framesSent_; }
  uint64_t sendsDropped() const { return sendsDropped_; }
  uint64_t malformedDropped() const { return malformedDropped_; }  // not VXLAN, wrong VNI or sender

 private:
  VxlanPort(UniqueFd fd, const VxlanConfig& config, EventLoop& loop);
  void onReadable();
  void updateWatch() { watch_.want(handler_ && receiveEnabled_ ? uint32_t{EPOLLIN} : 0u); }

  UniqueFd fd_;
  VxlanConfig config_;
  ReceiveHandler handler_;
  bool receiveEnabled_ = true;
  std::vector<uint8_t> buffer_;
  uint64_t framesSent_ = 0, sendsDropped_ = 0, malformedDropped_ = 0;
  FdWatch watch_;  // last: unregistered before fd_ closes
};

}  // namespace strata::network
