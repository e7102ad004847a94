// Switch forwarding rate in-process (Google Benchmark): frames of 64 and 1500
// bytes between two access ports whose MACs are learned, with 0, 100 and
// 10 000 flow rules that the frame does not match (so every lookup scans the
// whole table before normal forwarding), plus a trunk variant that pushes a tag
// on every frame. `flows` is how many distinct UDP source ports the frames
// cycle through: 1 lets the flow table's exact-match cache answer every lookup,
// 65536 (more than its 4096 slots) makes nearly every lookup scan the rules.
// Ports are null sinks; no I/O is measured.
// `socketPorts` measures the same forwarding across the UNIX-socket ports VMs
// use (SocketPort, SOCK_SEQPACKET, one frame per message): the switch runs on
// its own EventLoop thread, the benchmark thread writes frames into one port's
// peer socket and reads them from the other's, keeping a window in flight.
#include <benchmark/benchmark.h>
#include <fmt/core.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "network/flow_spec.h"
#include "network/socket_port.h"
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

void socketPorts(benchmark::State& state) {
  constexpr int kWindow = 16;  // frames in flight: well within the sockets' buffers, so none is dropped
  auto frameBytes = static_cast<size_t>(state.range(0));
  auto ruleCount = static_cast<int>(state.range(1));
  auto flows = static_cast<uint32_t>(state.range(2));
  auto loop = EventLoop::create();
  if (!loop) return state.SkipWithError(loop.error().message.c_str());
  int a[2], b[2];  // [0]: the benchmark's (VM) end, [1]: the switch's
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a) != 0 ||
      ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b) != 0)
    return state.SkipWithError("socketpair failed");
  UniqueFd vmA(a[0]), vmB(b[0]);
  Switch sw;
  SocketPort portA(UniqueFd(a[1]), **loop, "a"), portB(UniqueFd(b[1]), **loop, "b");
  if (!sw.addPort("a", portA, PortVlans::access(10)) || !sw.addPort("b", portB, PortVlans::access(10))) std::abort();
  addNonMatchingRules(sw, ruleCount);
  auto toB = udpFrame(frameBytes, 1, 2);
  auto fromB = udpFrame(frameBytes, 2, 1);
  std::thread switchThread([&] { (*loop)->run(); });
  std::vector<uint8_t> buffer(65536);
  uint64_t lost = 0;
  // Receives one frame on fd; false after a second without one (the switch dropped it).
  auto receiveOne = [&](int fd) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 1000) <= 0) return false;
    return ::recv(fd, buffer.data(), buffer.size(), 0) > 0;
  };
  (void)!::send(vmB.get(), fromB.data(), fromB.size(), 0);  // learn B
  receiveOne(vmA.get());                                     // (flooded to A)
  uint32_t flow = 0;
  auto sendOne = [&] {
    storeBe16(toB.data() + 14 + 20, static_cast<uint16_t>(1024 + flow));  // UDP source port
    flow = flow + 1 == flows ? 0 : flow + 1;
    (void)!::send(vmA.get(), toB.data(), toB.size(), 0);
  };
  for (int i = 0; i < kWindow; ++i) sendOne();
  for (auto _ : state) {
    if (!receiveOne(vmB.get())) ++lost;
    sendOne();
  }
  for (int i = 0; i < kWindow; ++i) receiveOne(vmB.get());
  (*loop)->stop();
  switchThread.join();
  if (lost != 0) state.SkipWithError(fmt::format("{} frames lost", lost).c_str());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frameBytes));
  state.counters["rules"] = ruleCount;
  state.counters["flows"] = flows;
}

// A controller installing rules one by one while traffic flows: each added rule is followed by a
// frame (a lookup that misses the cache). Items are rules added; the table starts from empty each run.
void ruleChurn(benchmark::State& state) {
  auto ruleCount = static_cast<int>(state.range(0));
  auto noPorts = [](std::string_view) -> std::optional<PortId> { return std::nullopt; };
  std::vector<FlowRule> rules;
  for (int i = 0; i < ruleCount; ++i)
    rules.push_back(*parseFlowRule(fmt::format("priority={},tcp,tp_dst={},actions=drop", 100 + i % 1000, i), noPorts));
  auto frame = udpFrame(64, 1, 2);
  for (auto _ : state) {
    Switch sw;
    NullPort in, out;
    PortId inId = *sw.addPort("in", in, PortVlans::access(10));
    if (!sw.addPort("out", out, PortVlans::access(10))) std::abort();
    for (int i = 0; i < ruleCount; ++i) {
      if (!sw.flows().add(rules[static_cast<size_t>(i)])) std::abort();
      storeBe16(frame.data() + 14 + 20, static_cast<uint16_t>(i));  // a new flow: the cache misses
      sw.receive(inId, frame);
    }
  }
  state.SetItemsProcessed(state.iterations() * ruleCount);
}

void accessToAccess(benchmark::State& state) { forward(state, false); }
void accessToTrunk(benchmark::State& state) { forward(state, true); }

BENCHMARK(accessToAccess)
    ->ArgNames({"bytes", "rules", "flows"})
    ->ArgsProduct({{64, 1500}, {0, 100, 10000}, {1, 65536}});
BENCHMARK(accessToTrunk)->ArgNames({"bytes", "rules", "flows"})->ArgsProduct({{64, 1500}, {0, 100}, {1, 65536}});
BENCHMARK(ruleChurn)->ArgNames({"rules"})->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(socketPorts)
    ->ArgNames({"bytes", "rules", "flows"})
    ->ArgsProduct({{64, 1500}, {0, 100, 10000}, {65536}})
    ->UseRealTime();

}  // namespace
}  // namespace strata::network

BENCHMARK_MAIN();
