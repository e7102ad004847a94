#include "network/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "base/log.h"

namespace strata::network {
namespace {
// Largest frame the fd can hand us (no GSO without a vnet header, but be generous).
constexpr size_t kReadBufferBytes = 65536;
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
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
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
  return std::unique_ptr<TapDevice>(new TapDevice(std::move(fd), std::move(actualName), loop));
}

TapDevice::TapDevice(UniqueFd fd, std::string name, EventLoop& loop)
    : fd_(std::move(fd)),
      name_(std::move(name)),
      buffer_(kReadBufferBytes),
      watch_(loop, fd_.get(), [this](uint32_t) { onReadable(); }) {}

TapDevice::~TapDevice() = default;

void TapDevice::send(std::span<const uint8_t> frame) {
  ssize_t written;
  do written = ::write(fd_.get(), frame.data(), frame.size());
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
    ++framesReceived_;
    handler_(std::span<const uint8_t>(buffer_.data(), static_cast<size_t>(got)));
  }
}

}  // namespace strata::network
