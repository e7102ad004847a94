#include "network/socket_port.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include "base/log.h"

namespace strata::network {
namespace {

constexpr std::string_view kAttachMagic = "strata-attach/1";
constexpr int kFramesPerWakeup = 64;  // so one busy peer cannot starve the loop
constexpr int kAttachReplyTimeoutMs = 5000;

bool validSwitchName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return name != "." && name != "..";
}

}  // namespace

SocketPort::SocketPort(UniqueFd fd, EventLoop& loop, std::string peerName)
    : fd_(std::move(fd)),
      peerName_(std::move(peerName)),
      buffer_(kSocketPortMaxMessageBytes),
      watch_(loop, fd_.get(), [this](uint32_t events) {
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) onReadable();
      }) {
  int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
}

SocketPort::~SocketPort() = default;

void SocketPort::send(std::span<const uint8_t> frame, const FrameOffload& offload) {
  if (closed_) {
    ++sendsDropped_;
    return;
  }
  if (frame.size() > kSocketPortMaxFrameBytes) {
    ++oversizeDropped_;
    return;
  }
  // One message per frame; send(2) (not sendmsg) is what the VM's sandbox allows.
  sendBuffer_.resize(kVirtioNetHeaderBytes + frame.size());
  encodeVirtioNetHeader(offload, std::span<uint8_t, kVirtioNetHeaderBytes>(sendBuffer_.data(), kVirtioNetHeaderBytes));
  std::memcpy(sendBuffer_.data() + kVirtioNetHeaderBytes, frame.data(), frame.size());
  ssize_t sent;
  do sent = ::send(fd_.get(), sendBuffer_.data(), sendBuffer_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent >= 0) ++framesSent_;
  else ++sendsDropped_;  // EAGAIN: the peer is not keeping up; EPIPE: it is gone (the reader notices)
}

void SocketPort::setReceiveHandler(ReceiveHandler handler) {
  handler_ = std::move(handler);
  updateWatch();
}

void SocketPort::setReceiveEnabled(bool enabled) {
  receiveEnabled_ = enabled;
  updateWatch();
}

// Watching continues without a handler only to notice the peer hanging up.
void SocketPort::updateWatch() {
  if (!closed_) watch_.want((handler_ && receiveEnabled_) ? uint32_t{EPOLLIN} : uint32_t{EPOLLRDHUP});
}

void SocketPort::onReadable() {
  for (int i = 0; i < kFramesPerWakeup && !closed_; ++i) {
    if (!(handler_ && receiveEnabled_)) {
      // Only watching for hang-up: peek whether the peer is gone.
      char probe;
      ssize_t got = ::recv(fd_.get(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close();
      return;
    }
    ssize_t got = ::recv(fd_.get(), buffer_.data(), buffer_.size(), MSG_TRUNC | MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      log::warn("switch port {}: receive failed: {}", peerName_, std::strerror(errno));
      close();
      return;
    }
    if (got == 0) {  // SOCK_SEQPACKET: end of stream (an empty message is never sent)
      close();
      return;
    }
    if (static_cast<size_t>(got) > buffer_.size()) {
      ++oversizeDropped_;
      continue;
    }
    std::span<const uint8_t> message(buffer_.data(), static_cast<size_t>(got));
    if (message.size() < kVirtioNetHeaderBytes) {
      ++malformedDropped_;
      continue;
    }
    auto frame = message.subspan(kVirtioNetHeaderBytes);
    auto offload = decodeVirtioNetHeader(message.first<kVirtioNetHeaderBytes>(), frame.size());
    if (!offload) {
      ++malformedDropped_;
      continue;
    }
    handler_(frame, *offload);
  }
}

void SocketPort::close() {
  if (closed_) return;
  closed_ = true;
  watch_.stop();
  if (closedHandler_) closedHandler_();
}

std::string encodeAttachRequest(const AttachRequest& request) {
  std::string text = fmt::format("{} {}", kAttachMagic, request.vlans.describe());
  if (request.mac) text += " mac=" + formatMac(*request.mac);
  return text;
}

Result<AttachRequest> decodeAttachRequest(std::string_view message) {
  if (message.size() > 4096) return Error{"attach request too long"};
  if (message.substr(0, kAttachMagic.size()) != kAttachMagic || (message.size() > kAttachMagic.size() &&
                                                                  message[kAttachMagic.size()] != ' '))
    return Error{"not a strata switch attach request"};
  message.remove_prefix(std::min(message.size(), kAttachMagic.size() + 1));
  AttachRequest request;
  bool sawVlans = false;
  while (!message.empty()) {
    size_t space = message.find(' ');
    std::string_view word = message.substr(0, space);
    message = space == std::string_view::npos ? std::string_view{} : message.substr(space + 1);
    if (word.empty()) continue;
    if (word.rfind("mac=", 0) == 0) {
      auto mac = parseMac(word.substr(4));
      if (!mac) return mac.error();
      if (isMulticast(mac->data())) return Error{"the port's MAC address must be unicast"};
      request.mac = *mac;
    } else if (!sawVlans) {
      auto vlans = PortVlans::parse(word);
      if (!vlans) return vlans.error();
      request.vlans = *vlans;
      sawVlans = true;
    } else {
      return Error{fmt::format("unexpected '{}' in attach request", word)};
    }
  }
  return request;
}

Result<SwitchPaths> switchPaths(std::string_view switchName) {
  if (!validSwitchName(switchName))
    return Error{fmt::format("'{}' is not a switch name (letters, digits, '-', '_', '.'; at most 64)", switchName)};
  const char* dir = std::getenv("STRATA_RUN_DIR");
  std::string base = dir && *dir ? dir : "/run/strata";
  SwitchPaths paths{fmt::format("{}/switch-{}.sock", base, switchName),
                    fmt::format("{}/switch-{}.ctl", base, switchName)};
  if (paths.control.size() >= sizeof(sockaddr_un::sun_path))
    return Error{fmt::format("{}: path too long for a UNIX socket", paths.control)};
  return paths;
}

Result<std::unique_ptr<SocketPort>> attachToSwitch(std::string_view switchName, const AttachRequest& request,
                                                   EventLoop& loop) {
  auto paths = switchPaths(switchName);
  if (!paths) return paths.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, paths->ports.data(), paths->ports.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return errnoError(fmt::format("switch {}: connect to {} (is `strata switch {}` running?)", switchName,
                                  paths->ports, switchName));
  std::string hello = encodeAttachRequest(request);
  if (::send(fd.get(), hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size()))
    return errnoError(fmt::format("switch {}: send attach request", switchName));
  pollfd ready{fd.get(), POLLIN, 0};
  int polled;
  do polled = ::poll(&ready, 1, kAttachReplyTimeoutMs);
  while (polled < 0 && errno == EINTR);
  if (polled <= 0) return Error{fmt::format("switch {}: no answer to the attach request", switchName)};
  char reply[512];
  ssize_t got = ::recv(fd.get(), reply, sizeof reply, 0);
  if (got <= 0) return Error{fmt::format("switch {}: closed the connection while attaching", switchName)};
  std::string_view answer(reply, static_cast<size_t>(got));
  if (answer.rfind("ok ", 0) != 0)
    return Error{fmt::format("switch {} refused the port: {}", switchName,
                             answer.rfind("error ", 0) == 0 ? answer.substr(6) : answer)};
  return std::make_unique<SocketPort>(std::move(fd), loop, fmt::format("{}:{}", switchName, answer.substr(3)));
}

}  // namespace strata::network
