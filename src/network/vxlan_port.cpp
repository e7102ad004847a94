#include "network/vxlan_port.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <charconv>
#include <cstring>

#include <fmt/core.h>

#include "network/ethernet.h"

namespace strata::network {
namespace {

constexpr uint8_t kVxlanFlagVni = 0x08;  // the I flag: VNI is valid
constexpr int kFramesPerWakeup = 64;
constexpr size_t kMaxDatagramBytes = 65535;

Result<sockaddr_in> parseEndpoint(std::string_view field, std::string_view text) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(kVxlanDefaultPort);
  size_t colon = text.find(':');
  std::string host(text.substr(0, colon));
  if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1)
    return Error{fmt::format("{}: '{}' is not an IPv4 address", field, host)};
  if (colon != std::string_view::npos) {
    std::string_view portText = text.substr(colon + 1);
    unsigned port = 0;
    auto [end, error] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (error != std::errc{} || end != portText.data() + portText.size() || port > 65535)
      return Error{fmt::format("{}: '{}' is not a UDP port", field, portText)};
    address.sin_port = htons(static_cast<uint16_t>(port));
  }
  return address;
}

}  // namespace

Result<VxlanConfig> parseVxlanConfig(std::string_view text, std::string& rest) {
  VxlanConfig config;
  config.local.sin_family = AF_INET;
  config.local.sin_port = htons(kVxlanDefaultPort);
  bool sawRemote = false, sawVni = false;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view word = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (word.rfind("remote=", 0) == 0) {
      auto remote = parseEndpoint("remote", word.substr(7));
      if (!remote) return remote.error();
      config.remote = *remote;
      sawRemote = true;
    } else if (word.rfind("local=", 0) == 0) {
      auto local = parseEndpoint("local", word.substr(6));
      if (!local) return local.error();
      config.local = *local;
    } else if (word.rfind("vni=", 0) == 0) {
      std::string_view value = word.substr(4);
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), config.vni);
      if (error != std::errc{} || end != value.data() + value.size() || config.vni > 0xffffff)
        return Error{fmt::format("vni: '{}' is not a VXLAN network id (0-16777215)", value)};
      sawVni = true;
    } else {
      rest += (rest.empty() ? "" : ",") + std::string(word);
    }
  }
  if (!sawRemote || !sawVni) return Error{"a VXLAN port needs remote=IP[:PORT] and vni=N"};
  return config;
}

Result<std::unique_ptr<VxlanPort>> VxlanPort::open(const VxlanConfig& config, EventLoop& loop) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("VXLAN socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&config.local), sizeof config.local) != 0) {
    char host[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &config.local.sin_addr, host, sizeof host);
    return errnoError(fmt::format("VXLAN: bind {}:{}", host, ntohs(config.local.sin_port)));
  }
  return std::unique_ptr<VxlanPort>(new VxlanPort(std::move(fd), config, loop));
}

VxlanPort::VxlanPort(UniqueFd fd, const VxlanConfig& config, EventLoop& loop)
    : fd_(std::move(fd)),
      config_(config),
      buffer_(kMaxDatagramBytes),
      watch_(loop, fd_.get(), [this](uint32_t) { onReadable(); }) {}

VxlanPort::~VxlanPort() = default;

uint16_t VxlanPort::localPort() const {
  sockaddr_in bound{};
  socklen_t length = sizeof bound;
  ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  return ntohs(bound.sin_port);
}

void VxlanPort::send(std::span<const uint8_t> frame, const FrameOffload&) {
  uint8_t header[kVxlanHeaderBytes] = {kVxlanFlagVni, 0, 0, 0, static_cast<uint8_t>(config_.vni >> 16),
                                       static_cast<uint8_t>(config_.vni >> 8), static_cast<uint8_t>(config_.vni), 0};
  iovec parts[2] = {{header, sizeof header}, {const_cast<uint8_t*>(frame.data()), frame.size()}};
  msghdr message{};
  message.msg_name = &config_.remote;
  message.msg_namelen = sizeof config_.remote;
  message.msg_iov = parts;
  message.msg_iovlen = 2;
  ssize_t sent;
  do sent = ::sendmsg(fd_.get(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent >= 0) ++framesSent_;
  else ++sendsDropped_;  // too big for UDP, queue full, or no route: a lossy link drops
}

void VxlanPort::setReceiveHandler(ReceiveHandler handler) {
  handler_ = std::move(handler);
  updateWatch();
}

void VxlanPort::setReceiveEnabled(bool enabled) {
  receiveEnabled_ = enabled;
  updateWatch();
}

void VxlanPort::onReadable() {
  for (int i = 0; i < kFramesPerWakeup && handler_ && receiveEnabled_; ++i) {
    sockaddr_in from{};
    socklen_t fromLength = sizeof from;
    ssize_t got = ::recvfrom(fd_.get(), buffer_.data(), buffer_.size(), MSG_DONTWAIT,
                             reinterpret_cast<sockaddr*>(&from), &fromLength);
    if (got < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: drained; ICMP errors (ECONNREFUSED) are not fatal to a datagram socket
    }
    auto bytes = static_cast<size_t>(got);
    const uint8_t* h = buffer_.data();
    uint32_t vni = uint32_t{h[4]} << 16 | uint32_t{h[5]} << 8 | h[6];
    bool fromRemote = from.sin_addr.s_addr == config_.remote.sin_addr.s_addr;
    if (bytes < kVxlanHeaderBytes + kEthernetHeaderBytes || (h[0] & kVxlanFlagVni) == 0 || vni != config_.vni ||
        !fromRemote) {
      ++malformedDropped_;
      continue;
    }
    handler_(std::span<const uint8_t>(h + kVxlanHeaderBytes, bytes - kVxlanHeaderBytes), FrameOffload{});
  }
}

}  // namespace strata::network
