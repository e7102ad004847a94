// SocketPort's wire form: a virtio_net_hdr before every frame, so offloads
// cross between strata processes; a peer's message without a valid header is
// dropped and counted, and the port keeps working.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <vector>

#include "network/socket_port.h"
#include "tcp_packets.h"

namespace strata::network::testing {
namespace {

class SocketPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
    peer_ = UniqueFd(fds[1]);
    loop_ = std::move(*EventLoop::create());
    port_ = std::make_unique<SocketPort>(UniqueFd(fds[0]), *loop_, "test");
    port_->setReceiveHandler([this](std::span<const uint8_t> frame, const FrameOffload& offload) {
      frames.emplace_back(frame.begin(), frame.end());
      offloads.push_back(offload);
    });
  }
  void peerSends(const std::vector<uint8_t>& message) {
    ASSERT_EQ(::send(peer_.get(), message.data(), message.size(), 0), static_cast<ssize_t>(message.size()));
    loop_->runOnce(100);
  }
  static std::vector<uint8_t> message(const FrameOffload& offload, const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> bytes(kVirtioNetHeaderBytes);
    encodeVirtioNetHeader(offload, std::span<uint8_t, kVirtioNetHeaderBytes>(bytes.data(), kVirtioNetHeaderBytes));
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    return bytes;
  }

  UniqueFd peer_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<SocketPort> port_;
  std::vector<std::vector<uint8_t>> frames;
  std::vector<FrameOffload> offloads;
};

TEST_F(SocketPortTest, SendsTheOffloadAheadOfTheFrame) {
  auto frame = tcpFrame(false, 40000);
  port_->send(frame, tsoOffload(false, 1448));
  std::vector<uint8_t> got(kSocketPortMaxMessageBytes);
  ssize_t bytes = ::recv(peer_.get(), got.data(), got.size(), 0);
  got.resize(static_cast<size_t>(bytes));
  EXPECT_EQ(got, message(tsoOffload(false, 1448), frame));
  EXPECT_EQ(port_->acceptedOffloads().tso4, true);
}

TEST_F(SocketPortTest, DeliversTheFrameWithItsOffload) {
  auto frame = tcpFrame(true, 500);
  peerSends(message(checksumOffload(true), frame));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0], frame);
  EXPECT_EQ(offloads[0], checksumOffload(true));
}

TEST_F(SocketPortTest, MessagesWithoutAValidHeaderAreDroppedAndCounted) {
  peerSends({1, 2, 3});  // shorter than a header
  FrameOffload pastEnd = checksumOffload(false);
  pastEnd.checksumOffset = 4000;
  peerSends(message(pastEnd, tcpFrame(false, 100)));
  auto unknownGso = message({}, tcpFrame(false, 100));
  unknownGso[1] = 5;  // UDP_L4 (USO): not supported
  peerSends(unknownGso);
  EXPECT_TRUE(frames.empty());
  EXPECT_EQ(port_->malformedDropped(), 3u);
  EXPECT_FALSE(port_->closed());
  peerSends(message({}, tcpFrame(false, 100)));
  EXPECT_EQ(frames.size(), 1u);
}

}  // namespace
}  // namespace strata::network::testing
