// VXLAN ports on loopback: two switches joined by a tunnel carry a frame from
// one VM port to the other; datagrams that are not VXLAN for this VNI, or not
// from the configured remote, are dropped and counted.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <fmt/core.h>

#include "network/switch.h"
#include "network/vxlan_port.h"
#include "switch_test_util.h"

namespace strata::network::testing {
namespace {

// Two endpoints on 127.0.0.1 and 127.0.0.2, same UDP port, each the other's remote.
struct TunnelPair {
  std::unique_ptr<VxlanPort> one, two;
  uint16_t udpPort = 0;
};

TunnelPair openPair(EventLoop& loop, uint32_t vni) {
  TunnelPair pair;
  for (uint16_t port = static_cast<uint16_t>(20000 + ::getpid() % 20000), tries = 0; tries < 20; ++port, ++tries) {
    std::string rest;
    auto a = parseVxlanConfig(fmt::format("remote=127.0.0.2:{},local=127.0.0.1:{},vni={}", port, port, vni), rest);
    auto b = parseVxlanConfig(fmt::format("remote=127.0.0.1:{},local=127.0.0.2:{},vni={}", port, port, vni), rest);
    auto one = VxlanPort::open(*a, loop);
    auto two = one ? VxlanPort::open(*b, loop) : Result<std::unique_ptr<VxlanPort>>(one.error());
    if (one && two) {
      pair.one = std::move(*one), pair.two = std::move(*two), pair.udpPort = port;
      return pair;
    }
  }
  return pair;
}

bool runUntil(EventLoop& loop, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.runOnce(10);
  }
  return true;
}

TEST(Vxlan, TwoSwitchesJoinedByATunnelCarryVlanTraffic) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  auto tunnel = openPair(**loop, 5001);
  ASSERT_TRUE(tunnel.one && tunnel.two) << "no free UDP port on 127.0.0.1/127.0.0.2";
  Switch left, right;
  RecordingPort vmLeft, vmRight, otherVlan;
  uint16_t vlans[] = {10, 20};
  ASSERT_TRUE(left.addPort("vm", vmLeft, PortVlans::access(10)).ok());
  ASSERT_TRUE(left.addPort("uplink", *tunnel.one, PortVlans::trunk(vlans)).ok());
  ASSERT_TRUE(right.addPort("uplink", *tunnel.two, PortVlans::trunk(vlans)).ok());
  ASSERT_TRUE(right.addPort("vm", vmRight, PortVlans::access(10)).ok());
  ASSERT_TRUE(right.addPort("other", otherVlan, PortVlans::access(20)).ok());

  auto frame = buildFrame({.src = mac(1), .payload = std::vector<uint8_t>(1400, 0x5a)});
  vmLeft.inject(frame);
  ASSERT_TRUE(runUntil(**loop, [&] { return !vmRight.sent.empty(); })) << "nothing crossed the tunnel";
  EXPECT_EQ(vmRight.sent[0], frame);
  EXPECT_TRUE(otherVlan.sent.empty());
  // And back, now unicast: right learned mac(1) behind its uplink.
  vmRight.inject(buildFrame({.dst = mac(1), .src = mac(2)}));
  ASSERT_TRUE(runUntil(**loop, [&] { return !vmLeft.sent.empty(); }));
  EXPECT_EQ(vmLeft.sent[0], buildFrame({.dst = mac(1), .src = mac(2)}));
  EXPECT_EQ(tunnel.one->framesSent(), 1u);
  EXPECT_EQ(tunnel.two->framesSent(), 1u);
}

TEST(Vxlan, DropsWhatIsNotVxlanForThisNetwork) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  auto tunnel = openPair(**loop, 77);
  ASSERT_TRUE(tunnel.one && tunnel.two);
  std::vector<std::vector<uint8_t>> received;
  tunnel.two->setReceiveHandler([&](std::span<const uint8_t> f, const FrameOffload&) { received.emplace_back(f.begin(), f.end()); });
  auto sendFrom = [&](const char* source, std::vector<uint8_t> datagram) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in from{}, to{};
    from.sin_family = to.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    ::inet_pton(AF_INET, "127.0.0.2", &to.sin_addr);
    to.sin_port = htons(tunnel.udpPort);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
    ::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    ::close(fd);
  };
  auto frame = buildFrame({});
  auto vxlan = [&](uint8_t flags, uint32_t vni) {
    std::vector<uint8_t> d{flags, 0, 0, 0, static_cast<uint8_t>(vni >> 16), static_cast<uint8_t>(vni >> 8),
                           static_cast<uint8_t>(vni), 0};
    d.insert(d.end(), frame.begin(), frame.end());
    return d;
  };
  sendFrom("127.0.0.1", {0x08, 0, 0});      // runt
  sendFrom("127.0.0.1", vxlan(0x00, 77));   // I flag clear
  sendFrom("127.0.0.1", vxlan(0x08, 78));   // another VNI
  sendFrom("127.0.0.3", vxlan(0x08, 77));   // not from the remote
  sendFrom("127.0.0.1", vxlan(0x08, 77));   // the one good datagram
  ASSERT_TRUE(runUntil(**loop, [&] { return !received.empty(); }));
  (*loop)->runOnce(50);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0], frame);
  EXPECT_EQ(tunnel.two->malformedDropped(), 4u);
}

TEST(Vxlan, ParsesItsOptions) {
  std::string rest;
  auto config = parseVxlanConfig("remote=10.1.2.3,vni=42,trunk=10,20", rest);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(ntohs(config->remote.sin_port), kVxlanDefaultPort);
  EXPECT_EQ(config->vni, 42u);
  EXPECT_EQ(rest, "trunk=10,20");
  for (const char* bad : {"vni=1", "remote=10.0.0.1", "remote=x,vni=1", "remote=10.0.0.1,vni=16777216",
                          "remote=10.0.0.1:70000,vni=1"}) {
    std::string ignored;
    EXPECT_FALSE(parseVxlanConfig(bad, ignored).ok()) << bad;
  }
}

}  // namespace
}  // namespace strata::network::testing
