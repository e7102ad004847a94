// TapDevice: a Linux TAP interface (/dev/net/tun, IFF_TAP | IFF_NO_PI) as a
// non-blocking PacketPort driven by an EventLoop: frames read from the kernel
// go to a handler on the loop thread, send() writes one frame. Opened with a
// vnet header (IFF_VNET_HDR) and TUNSETOFFLOAD, so checksum and TSO offloads
// cross to and from the host stack; an adopted fd without one carries plain frames.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "network/fd_watch.h"
#include "network/packet_port.h"

namespace strata::network {

class TapDevice final : public PacketPort {
 public:
  // Attaches to TAP interface `name`, creating it if it does not exist (needs
  // CAP_NET_ADMIN unless pre-created for this user); "" lets the kernel pick tapN.
  // Call on the loop thread or before the loop runs; loop must outlive the device.
  static Result<std::unique_ptr<TapDevice>> open(const std::string& name, EventLoop& loop);
  // The two halves of open(): the jailer opens the fd before dropping its
  // privileges, and the jailed VM adopts it (a copy) on its loop.
  static Result<UniqueFd> openFd(const std::string& name);
  static Result<std::unique_ptr<TapDevice>> adopt(UniqueFd fd, EventLoop& loop);
  ~TapDevice() override;
  TapDevice(const TapDevice&) = delete;
  TapDevice& operator=(const TapDevice&) = delete;

  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }

  // Writes one frame; counts a drop if the kernel queue is full or the interface is down.
  void send(std::span<const uint8_t> frame, const FrameOffload& offload) override;
  void setReceiveHandler(ReceiveHandler handler) override;
  // While disabled the fd is not read and the kernel queues (then drops) frames.
  void setReceiveEnabled(bool enabled) override;
  OffloadCaps acceptedOffloads() const override { return vnetHeader_ ? OffloadCaps::all() : OffloadCaps{}; }
  bool vnetHeader() const { return vnetHeader_; }

  uint64_t framesReceived() const { return framesReceived_; }
  uint64_t framesSent() const { return framesSent_; }
  uint64_t sendsDropped() const { return sendsDropped_; }
  uint64_t malformedDropped() const { return malformedDropped_; }  // a vnet header that did not validate

 private:
  TapDevice(UniqueFd fd, std::string name, bool vnetHeader, EventLoop& loop);
  void onReadable();
  void updateWatch() { watch_.want(handler_ && receiveEnabled_ ? uint32_t{EPOLLIN} : 0u); }

  UniqueFd fd_;
  std::string name_;
  ReceiveHandler handler_;
  bool receiveEnabled_ = true;
  bool vnetHeader_;
  std::vector<uint8_t> buffer_;
  uint64_t framesReceived_ = 0;
  uint64_t framesSent_ = 0;
  uint64_t sendsDropped_ = 0;
  uint64_t malformedDropped_ = 0;
  FdWatch watch_;  // last: unregistered before fd_ closes
};

}  // namespace strata::network
