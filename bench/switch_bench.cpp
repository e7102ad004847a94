// Switch forwarding rate in-process (Google Benchmark): frames of 64 and 1500
// bytes between two access ports whose MACs are learned, with 0, 100 and
// 10 000 flow rules that the frame does not match (so every lookup scans the
// whole table before normal forwarding), plus a trunk variant that pushes a tag
// on every frame. `flows` is how many distinct UDP source ports the frames
// cycle through: 1 lets the flow table's exact-match cache answer every lookup,
// 65536 (more than its 4096 slots) makes nearly every lookup scan the rules.
// Ports are null sinks; no I/O is measured.
#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <array>
#include <vector>

#include "network/flow_spec.h"
#include "network/switch.h"

namespace strata::network {
namespace {

class NullPort : public PacketPort {
 public:
  void send(std::span<const uint8_t> frame, const FrameOffload&) override { bytes += frame.size(); }
  void setReceiveHandler(ReceiveHandler) override {}
  void setReceiveEnabled(bool) override {}
  uint64_t bytes = 0;
};

std::vector<uint8_t> udpFrame(size_t size, uint8_t srcLast, uint8_t dstLast) {
  std::vector<uint8_t> frame(size, 0);
  uint8_t dst[6] = {0x52, 0x54, 0, 0, 0, dstLast}, src[6] = {0x52, 0x54, 0, 0, 0, srcLast};
  std::copy(dst, dst + 6, frame.begin());
  std::copy(src, src + 6, frame.begin() + 6);
  storeBe16(frame.data() + 12, kEtherTypeIpv4);
  uint8_t* ip = frame.data() + 14;
  ip[0] = 0x45;
  storeBe16(ip + 2, static_cast<uint16_t>(size - 14));
  ip[8] = 64;
  ip[9] = 17;  // UDP
  uint8_t srcIp[4] = {10, 0, 0, srcLast}, dstIp[4] = {10, 0, 0, dstLast};
  std::copy(srcIp, srcIp + 4, ip + 12);
  std::copy(dstIp, dstIp + 4, ip + 16);
  storeBe16(ip + 20, 40000);
  storeBe16(ip + 22, 5201);
  return frame;
}

// Rules that look at the frame's fields but never match it (TCP ports, other subnets).
void addNonMatchingRules(Switch& sw, int count) {
  auto noPorts = [](std::string_view) -> std::optional<PortId> { return std::nullopt; };
  for (int i = 0; i < count; ++i) {
    std::string text = i % 2 == 0 ? fmt::format("priority={},tcp,tp_dst={},actions=drop", 100 + i % 1000, i % 65536)
                                  : fmt::format("priority={},nw_src=172.{}.{}.0/24,actions=drop", 100 + i % 1000,
                                                16 + (i / 256) % 16, i % 256);
    auto rule = parseFlowRule(text, noPorts);
    if (!rule || !sw.flows().add(*rule)) std::abort();
  }
}

void forward(benchmark::State& state, bool trunkEgress) {
  auto frameBytes = static_cast<size_t>(state.range(0));
  auto ruleCount = static_cast<int>(state.range(1));
  auto flows = static_cast<uint32_t>(state.range(2));
  Switch sw;
  NullPort in, out, bystander;
  uint16_t vlans[] = {10};
  PortId inId = *sw.addPort("in", in, PortVlans::access(10));
  if (!sw.addPort("out", out, trunkEgress ? PortVlans::trunk(vlans) : PortVlans::access(10))) std::abort();
  if (!sw.addPort("bystander", bystander, PortVlans::access(10))) std::abort();
  addNonMatchingRules(sw, ruleCount);
  auto toOut = udpFrame(frameBytes, 1, 2);
  auto fromOut = udpFrame(frameBytes, 2, 1);
  if (trunkEgress) {  // the trunk speaks VLAN 10 tagged
    uint8_t tag[4] = {0x81, 0x00, 0x00, 10};
    fromOut.insert(fromOut.begin() + 12, tag, tag + 4);
  }
  sw.receive(*sw.portByName("out"), fromOut);  // learn the destination
  uint32_t flow = 0;
  for (auto _ : state) {
    storeBe16(toOut.data() + 14 + 20, static_cast<uint16_t>(1024 + flow));  // UDP source port
    flow = flow + 1 == flows ? 0 : flow + 1;
    sw.receive(inId, toOut);
  }
  if (bystander.bytes > fromOut.size()) state.SkipWithError("frames were flooded: destination not learned");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frameBytes));
  state.counters["rules"] = ruleCount;
  state.counters["flows"] = flows;
}

void accessToAccess(benchmark::State& state) { forward(state, false); }
void accessToTrunk(benchmark::State& state) { forward(state, true); }

BENCHMARK(accessToAccess)
    ->ArgNames({"bytes", "rules", "flows"})
    ->ArgsProduct({{64, 1500}, {0, 100, 10000}, {1, 65536}});
BENCHMARK(accessToTrunk)->ArgNames({"bytes", "rules", "flows"})->ArgsProduct({{64, 1500}, {0, 100}, {1, 65536}});

}  // namespace
}  // namespace strata::network

BENCHMARK_MAIN();
