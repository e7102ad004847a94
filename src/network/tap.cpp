#include "network/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "base/log.h"

namespace strata::network {
namespace {
// A vnet header and the largest frame the fd can hand us (a 64 KiB GSO frame, possibly tagged).
constexpr size_t kReadBufferBytes = kVirtioNetHeaderBytes + 65536 + 4;
// Frames handled per readiness callback, so one busy TAP cannot starve the loop.
constexpr int kFramesPerWakeup = 64;
}  // namespace

Result<std::unique_ptr<TapDevice>> TapDevice::open(const std::string& name, EventLoop& loop) {
  auto fd = openFd(name);
  if (!fd) return fd.error();
  return adopt(std::move(*fd), loop);
}

Result<UniqueFd> TapDevice::openFd(const std::string& name) {
  if (name.size() >= IFNAMSIZ)
    return Error{fmt::format("TAP interface name '{}' is longer than {} characters", name, IFNAMSIZ - 1)};
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return errnoError("open /dev/net/tun");
  ifreq request{};
  request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::memcpy(request.ifr_name, name.data(), name.size());
  if (::ioctl(fd.get(), TUNSETIFF, &request) != 0)
    return errnoError(fmt::format("TUNSETIFF for TAP interface '{}'", name));
  return fd;
}

Result<std::unique_ptr<TapDevice>> TapDevice::adopt(UniqueFd fd, EventLoop& loop) {
  ifreq request{};
  if (::ioctl(fd.get(), TUNGETIFF, &request) != 0) return errnoError("TUNGETIFF: not an attached TAP fd");
  if ((request.ifr_flags & IFF_TAP) == 0) return Error{"TUNGETIFF: a TUN, not a TAP interface"};
  std::string actualName(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));
  bool vnetHeader = (request.ifr_flags & IFF_VNET_HDR) != 0;
  // Lets the host stack hand us frames still needing a checksum, and TCP segments up to 64 KiB.
  if (vnetHeader && ::ioctl(fd.get(), TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) != 0)
    return errnoError(fmt::format("TUNSETOFFLOAD for TAP interface '{}'", actualName));
  return std::unique_ptr<TapDevice>(new TapDevice(std::move(fd), std::move(actualName), vnetHeader, loop));
}

TapDevice::TapDevice(UniqueFd fd, std::string name, bool vnetHeader, EventLoop& loop)
    : fd_(std::move(fd)),
      name_(std::move(name)),
      vnetHeader_(vnetHeader),
      buffer_(kReadBufferBytes),
      watch_(loop, fd_.get(), [this](uint32_t) { onReadable(); }) {}

TapDevice::~TapDevice() = default;

void TapDevice::send(std::span<const uint8_t> frame, const FrameOffload& offload) {
  uint8_t header[kVirtioNetHeaderBytes];
  encodeVirtioNetHeader(offload, header);
  iovec parts[2] = {{header, sizeof header}, {const_cast<uint8_t*>(frame.data()), frame.size()}};
  int first = vnetHeader_ ? 0 : 1;
  ssize_t written;
  do written = ::writev(fd_.get(), parts + first, 2 - first);
  while (written < 0 && errno == EINTR);
  if (written >= 0) ++framesSent_;
  else ++sendsDropped_;
}

void TapDevice::setReceiveHandler(ReceiveHandler handler) {
  handler_ = std::move(handler);
  updateWatch();
}

void TapDevice::setReceiveEnabled(bool enabled) {
  receiveEnabled_ = enabled;
  updateWatch();
}

void TapDevice::onReadable() {
  for (int i = 0; i < kFramesPerWakeup && handler_ && receiveEnabled_; ++i) {
    ssize_t got = ::read(fd_.get(), buffer_.data(), buffer_.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // drained
      // A persistent error (interface removed) would make a level-triggered watch spin.
      log::warn("TAP {}: read failed, receive stopped: {}", name_, std::strerror(errno));
      receiveEnabled_ = false;
      updateWatch();
      return;
    }
    if (got == 0) return;
    std::span<const uint8_t> frame(buffer_.data(), static_cast<size_t>(got));
    FrameOffload offload;
    if (vnetHeader_) {
      if (frame.size() < kVirtioNetHeaderBytes) {
        ++malformedDropped_;
        continue;
      }
      auto decoded = decodeVirtioNetHeader(frame.first<kVirtioNetHeaderBytes>(), frame.size() - kVirtioNetHeaderBytes);
      if (!decoded) {
        ++malformedDropped_;
        continue;
      }
      offload = *decoded;
      frame = frame.subspan(kVirtioNetHeaderBytes);
    }
    ++framesReceived_;
    handler_(frame, offload);
  }
}

}  // namespace strata::network
