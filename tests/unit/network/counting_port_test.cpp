// CountingPort: every frame passes through unchanged both ways, and the
// counters (owned by the caller) hold the frames and bytes of each direction.
#include <gtest/gtest.h>

#include "network/counting_port.h"
#include "switch_test_util.h"

namespace strata::network {
namespace {

TEST(CountingPort, PassesFramesThroughAndCountsEachDirection) {
  auto inner = std::make_unique<testing::RecordingPort>();
  auto* wire = inner.get();
  wire->accepts = OffloadCaps::all();
  TrafficCounters counters;
  CountingPort port(std::move(inner), counters);
  EXPECT_TRUE(port.acceptedOffloads().tso4);

  std::vector<std::vector<uint8_t>> received;
  port.setReceiveHandler([&](std::span<const uint8_t> frame, const FrameOffload&) {
    received.emplace_back(frame.begin(), frame.end());
  });
  ASSERT_TRUE(wire->inject(std::vector<uint8_t>(60, 0xab)));
  ASSERT_TRUE(wire->inject(std::vector<uint8_t>(1514, 0xcd)));
  std::vector<uint8_t> out(100, 0x11);
  port.send(out, {});

  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[1], std::vector<uint8_t>(1514, 0xcd));
  ASSERT_EQ(wire->sent.size(), 1u);
  EXPECT_EQ(wire->sent[0], out);
  PortTraffic traffic = counters.read();
  EXPECT_EQ(traffic.rxFrames, 2u);
  EXPECT_EQ(traffic.rxBytes, 60u + 1514u);
  EXPECT_EQ(traffic.txFrames, 1u);
  EXPECT_EQ(traffic.txBytes, 100u);

  port.setReceiveHandler(nullptr);  // detached: nothing more arrives or is counted
  EXPECT_FALSE(wire->inject(std::vector<uint8_t>(60, 0)));
  EXPECT_EQ(counters.read().rxFrames, 2u);
}

}  // namespace
}  // namespace strata::network
