// VirtioNet bridged onto a real host TAP interface: the host kernel ARPs for a
// guest address, the "guest" answers, and the kernel's queued datagram arrives.
// Needs CAP_NET_ADMIN and /dev/net/tun; skips (saying why) otherwise.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "network/tap.h"
#include "virtio/net.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

constexpr const char* kHostIp = "10.213.77.1";
constexpr const char* kGuestIp = "10.213.77.2";
constexpr std::array<uint8_t, 6> kGuestMac{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

// Gives the interface an IPv4 address and brings it up; returns an error text or "".
std::string configureInterface(const std::string& name) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return std::string("socket: ") + std::strerror(errno);
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  auto* addr = reinterpret_cast<sockaddr_in*>(&req.ifr_addr);
  addr->sin_family = AF_INET;
  ::inet_pton(AF_INET, kHostIp, &addr->sin_addr);
  std::string error;
  if (::ioctl(s, SIOCSIFADDR, &req) != 0) error = std::string("SIOCSIFADDR: ") + std::strerror(errno);
  ::inet_pton(AF_INET, "255.255.255.0", &addr->sin_addr);
  if (error.empty() && ::ioctl(s, SIOCSIFNETMASK, &req) != 0)
    error = std::string("SIOCSIFNETMASK: ") + std::strerror(errno);
  if (error.empty() && ::ioctl(s, SIOCGIFFLAGS, &req) != 0) error = std::string("SIOCGIFFLAGS: ") + std::strerror(errno);
  req.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (error.empty() && ::ioctl(s, SIOCSIFFLAGS, &req) != 0) error = std::string("SIOCSIFFLAGS: ") + std::strerror(errno);
  ::close(s);
  return error;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

TEST(VirtioNetTap, ArpAndUdpThroughHostTap) {
  TestDriver d;
  auto tap = network::TapDevice::open("", d.loop());
  if (!tap.ok()) GTEST_SKIP() << "cannot create a TAP interface here: " << tap.error().message;
  std::string name = (*tap)->name();
  if (auto error = configureInterface(name); !error.empty())
    GTEST_SKIP() << "cannot configure TAP interface " << name << ": " << error;

  network::TapDevice& port = **tap;
  VirtioNet net(port, kGuestMac);
  d.attach(net);
  d.start(featureBit(net::kFeatureMac) | featureBit(net::kFeatureStatus), {64, 16});
  constexpr int kRxBuffers = 32;
  for (int i = 0; i < kRxBuffers; ++i) d.addChain(0, {{kDataArea + 0x1000ull * i, 1526, true}});
  d.kick(0);
  d.runLoopBriefly();

  // The host sends a datagram to the "guest": the kernel must first ARP for it.
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(udp, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(9999);
  ::inet_pton(AF_INET, kGuestIp, &dst.sin_addr);
  const char payload[] = "strata-tap-test";
  ASSERT_EQ(::sendto(udp, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst),
            static_cast<ssize_t>(sizeof payload));

  uint8_t guestIp[4];
  ::inet_pton(AF_INET, kGuestIp, guestIp);
  uint16_t seen = 0;
  const uint8_t* arpRequest = nullptr;
  // Scans newly received frames (the kernel may also send IPv6 chatter).
  auto findFrame = [&](auto&& match) -> const uint8_t* {
    while (seen != d.usedIdx(0)) {
      auto elem = d.used(0, seen++);
      const uint8_t* frame = d.host(kDataArea + 0x1000ull * elem.id, 1526) + net::kHeaderBytes;
      if (elem.len >= net::kHeaderBytes + 42 && match(frame)) return frame;
    }
    return nullptr;
  };
  ASSERT_TRUE(d.runUntil([&] {
    arpRequest = findFrame([&](const uint8_t* f) {
      return be16(f + 12) == 0x0806 && be16(f + 20) == 1 && std::memcmp(f + 38, guestIp, 4) == 0;
    });
    return arpRequest != nullptr;
  })) << "no ARP request for " << kGuestIp << " arrived from " << name;
  uint8_t hostMac[6], hostIp[4];
  std::memcpy(hostMac, arpRequest + 6, 6);
  std::memcpy(hostIp, arpRequest + 28, 4);

  // The guest answers: ARP reply, guest MAC is-at guest IP.
  uint8_t reply[60] = {};
  std::memcpy(reply, hostMac, 6);
  std::memcpy(reply + 6, kGuestMac.data(), 6);
  reply[12] = 0x08, reply[13] = 0x06;                       // ethertype ARP
  reply[14] = 0x00, reply[15] = 0x01;                       // hardware: Ethernet
  reply[16] = 0x08, reply[17] = 0x00;                       // protocol: IPv4
  reply[18] = 6, reply[19] = 4, reply[20] = 0, reply[21] = 2;  // sizes, op = reply
  std::memcpy(reply + 22, kGuestMac.data(), 6);
  std::memcpy(reply + 28, guestIp, 4);
  std::memcpy(reply + 32, hostMac, 6);
  std::memcpy(reply + 38, hostIp, 4);
  std::vector<uint8_t> txBuffer(net::kHeaderBytes, 0);
  txBuffer.insert(txBuffer.end(), reply, reply + sizeof reply);
  d.fill(kDataArea + 0x100000, txBuffer.data(), txBuffer.size());
  d.addChain(1, {{kDataArea + 0x100000, static_cast<uint32_t>(txBuffer.size()), false}});
  d.kick(1);
  ASSERT_TRUE(d.waitUsed(1, 1));
  EXPECT_EQ(port.framesSent(), 1u);

  // Now resolved, the kernel releases the queued UDP datagram to the guest MAC.
  const uint8_t* datagram = nullptr;
  ASSERT_TRUE(d.runUntil([&] {
    datagram = findFrame([&](const uint8_t* f) {
      return be16(f + 12) == 0x0800 && std::memcmp(f, kGuestMac.data(), 6) == 0 && f[23] == 17 &&
             be16(f + 36) == 9999;
    });
    return datagram != nullptr;
  })) << "the kernel did not deliver the UDP datagram after the guest's ARP reply";
  EXPECT_EQ(std::memcmp(datagram + 42, payload, sizeof payload), 0);
  ::close(udp);
}

TEST(TapDevice, RejectsOverlongName) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  auto tap = network::TapDevice::open("this-name-is-far-too-long-for-linux", **loop);
  ASSERT_FALSE(tap.ok());
  EXPECT_NE(tap.error().message.find("longer than"), std::string::npos);
}

}  // namespace
}  // namespace strata::virtio::testing
