// The switch process's plumbing, in-process: a SwitchService on its own loop
// thread, VM-side SocketPorts attached over real UNIX sockets, the control
// socket, a VM port dying, and malformed attach requests.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "network/socket_port.h"
#include "network/switch_service.h"
#include "switch_test_util.h"

namespace strata::network::testing {
namespace {

class SwitchServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/strata-switch-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    runDir_ = dir;
    ::setenv("STRATA_RUN_DIR", runDir_.c_str(), 1);
    switchLoop_ = std::move(*EventLoop::create());
    clientLoop_ = std::move(*EventLoop::create());
    auto service = SwitchService::start("t", *switchLoop_);
    ASSERT_TRUE(service.ok()) << service.error().message;
    service_ = std::move(*service);
    thread_ = std::thread([this] { switchLoop_->run(); });
  }
  void TearDown() override {
    switchLoop_->stop();
    if (thread_.joinable()) thread_.join();
    service_.reset();
    ::rmdir(runDir_.c_str());
  }
  std::unique_ptr<SocketPort> attach(const std::string& vlans, std::vector<std::vector<uint8_t>>& inbox) {
    auto port = attachToSwitch("t", {*PortVlans::parse(vlans), mac(9)}, *clientLoop_);
    EXPECT_TRUE(port.ok()) << (port.ok() ? "" : port.error().message);
    if (!port.ok()) return nullptr;
    (*port)->setReceiveHandler(
        [&inbox](std::span<const uint8_t> f, const FrameOffload&) { inbox.emplace_back(f.begin(), f.end()); });
    return std::move(*port);
  }
  // Runs the client loop until done() or two seconds pass.
  bool pump(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      clientLoop_->runOnce(10);
    }
    return true;
  }
  std::string request(const std::string& text) {
    auto reply = sendSwitchRequest("t", text);
    return reply.ok() ? *reply : "error: " + reply.error().message;
  }

  std::string runDir_;
  std::unique_ptr<EventLoop> switchLoop_, clientLoop_;
  std::unique_ptr<SwitchService> service_;
  std::thread thread_;
};

TEST_F(SwitchServiceTest, VmPortsExchangeFramesWithinTheirVlan) {
  std::vector<std::vector<uint8_t>> inboxA, inboxB, inboxC;
  auto a = attach("vlan=10", inboxA);
  auto b = attach("vlan=10", inboxB);
  auto c = attach("vlan=20", inboxC);
  ASSERT_TRUE(a && b && c);
  auto frame = buildFrame({.src = mac(1)});
  a->send(frame, {});
  ASSERT_TRUE(pump([&] { return !inboxB.empty(); }));
  EXPECT_EQ(inboxB[0], frame);
  b->send(buildFrame({.dst = mac(1), .src = mac(2)}), {});
  ASSERT_TRUE(pump([&] { return !inboxA.empty(); }));
  clientLoop_->runOnce(50);
  EXPECT_TRUE(inboxC.empty()) << "VLAN 20 port received VLAN 10 traffic";

  std::string ports = request("port-list json");
  EXPECT_NE(ports.find("\"vlans\":\"vlan=20\""), std::string::npos) << ports;
  EXPECT_NE(ports.find("\"mac\":\"52:54:00:00:00:09\""), std::string::npos) << ports;
  EXPECT_NE(ports.find("\"kind\":\"vm\""), std::string::npos) << ports;
}

TEST_F(SwitchServiceTest, FlowRulesAreManagedOverTheControlSocket) {
  std::vector<std::vector<uint8_t>> inboxA, inboxB;
  auto a = attach("vlan=1", inboxA);
  auto b = attach("vlan=1", inboxB);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(request("flow-add priority=10,dl_type=0x88b5,actions=drop"), "1\n");
  EXPECT_NE(request("flow-add priority=10,bogus,actions=drop").find("error: "), std::string::npos);
  a->send(buildFrame({.src = mac(1)}), {});
  a->send(buildFrame({.src = mac(1), .etherType = kEtherTypeArp}), {});
  ASSERT_TRUE(pump([&] { return !inboxB.empty(); }));
  clientLoop_->runOnce(50);
  ASSERT_EQ(inboxB.size(), 1u) << "the dropped frame arrived";
  EXPECT_EQ(loadBe16(inboxB[0].data() + 12), kEtherTypeArp);
  std::string flows = request("flow-list json");
  EXPECT_NE(flows.find("\"packets\":1"), std::string::npos) << flows;
  EXPECT_NE(flows.find("\"match\":\"dl_type=0x88b5\""), std::string::npos) << flows;
  EXPECT_EQ(request("flow-del 1"), "");
  EXPECT_EQ(request("flow-list"), "");
  EXPECT_NE(request("flow-del 1").find("no flow 1"), std::string::npos);
  EXPECT_NE(request("explode").find("unknown request"), std::string::npos);
}

TEST_F(SwitchServiceTest, MirrorRequestCopiesAPortsTrafficToAnother) {
  std::vector<std::vector<uint8_t>> inboxA, inboxB, inboxMonitor;
  auto a = attach("vlan=1", inboxA);
  auto b = attach("vlan=1", inboxB);
  auto monitor = attach("vlan=99", inboxMonitor);
  ASSERT_TRUE(a && b && monitor);
  EXPECT_NE(request("mirror 1 42").find("error: "), std::string::npos) << "mirror to a port that does not exist";
  EXPECT_NE(request("mirror nosuch 3").find("error: "), std::string::npos);
  ASSERT_EQ(request("mirror 1 3"), "");
  auto frame = buildFrame({.src = mac(1)});
  a->send(frame, {});
  ASSERT_TRUE(pump([&] { return !inboxMonitor.empty() && !inboxB.empty(); }));
  EXPECT_EQ(inboxMonitor[0], frame);
  EXPECT_NE(request("port-list json").find("\"mirror_to\":3"), std::string::npos);
  ASSERT_EQ(request("mirror 1 off"), "");
  a->send(frame, {});
  ASSERT_TRUE(pump([&] { return inboxB.size() == 2; }));
  clientLoop_->runOnce(50);
  EXPECT_EQ(inboxMonitor.size(), 1u) << "mirroring went on after 'off'";
}

TEST_F(SwitchServiceTest, AVmThatDiesTakesOnlyItsPortDown) {
  std::vector<std::vector<uint8_t>> inboxA, inboxB;
  auto a = attach("vlan=1", inboxA);
  auto b = attach("vlan=1", inboxB);
  ASSERT_TRUE(a && b);
  ASSERT_NE(request("port-list").find("vm-"), std::string::npos);
  a.reset();  // the VM process's socket closes
  auto countPorts = [&] {
    std::string json = request("port-list json");
    size_t n = 0;
    for (size_t at = json.find("\"id\":"); at != std::string::npos; at = json.find("\"id\":", at + 1)) ++n;
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (countPorts() != 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(countPorts(), 1u);
  std::vector<std::vector<uint8_t>> inboxC;
  auto c = attach("vlan=1", inboxC);
  ASSERT_TRUE(c);
  b->send(buildFrame({.src = mac(2)}), {});
  ASSERT_TRUE(pump([&] { return !inboxC.empty(); })) << "the switch stopped forwarding after a port died";
}

TEST_F(SwitchServiceTest, MalformedAttachRequestsAreRefused) {
  for (std::string hello : std::vector<std::string>{"hello", "strata-attach/1 vlan=9999", "strata-attach/1 vlan=1 mac=01:00:5e:00:00:01",
                            std::string(3000, 'x')}) {
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string path = switchPaths("t")->ports;
    std::memcpy(address.sun_path, path.data(), path.size());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::send(fd, hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
    char reply[512] = {};
    timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ssize_t got = ::recv(fd, reply, sizeof reply - 1, 0);
    ::close(fd);
    ASSERT_GT(got, 0) << hello;
    EXPECT_EQ(std::string(reply, 6), "error ") << hello << " -> " << reply;
  }
  EXPECT_EQ(request("port-list json").find("\"id\":"), std::string::npos) << "a refused attach left a port";
}

TEST_F(SwitchServiceTest, AConnectionThatNeverAttachesIsClosedAndBlocksNobody) {
  int stalled = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string path = switchPaths("t")->ports;
  std::memcpy(address.sun_path, path.data(), path.size());
  ASSERT_EQ(::connect(stalled, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  std::vector<std::vector<uint8_t>> inboxA, inboxB;
  auto a = attach("vlan=1", inboxA);  // others attach and switch meanwhile
  auto b = attach("vlan=1", inboxB);
  ASSERT_TRUE(a && b);
  a->send(buildFrame({.src = mac(1)}), {});
  ASSERT_TRUE(pump([&] { return !inboxB.empty(); }));
  timeval timeout{15, 0};
  ::setsockopt(stalled, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char byte;
  EXPECT_EQ(::recv(stalled, &byte, 1, 0), 0) << "the switch kept a silent connection open";
  ::close(stalled);
}

TEST_F(SwitchServiceTest, ASecondSwitchOfTheSameNameIsRefused) {
  auto loop = EventLoop::create();
  auto second = SwitchService::start("t", **loop);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("already running"), std::string::npos);
}

TEST(AttachRequest, RoundTripsAndRejectsGarbage) {
  AttachRequest request{*PortVlans::parse("trunk=10,20,native=1"), MacAddress{0x52, 0x54, 0, 1, 2, 3}};
  auto decoded = decodeAttachRequest(encodeAttachRequest(request));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->vlans.describe(), "trunk=10,20,native=1");
  EXPECT_EQ(*decoded->mac, *request.mac);
  EXPECT_FALSE(decodeAttachRequest("strata-attach/1 vlan=1 vlan=2").ok());
  EXPECT_FALSE(decodeAttachRequest("strata-attach/10").ok());
  EXPECT_FALSE(switchPaths("../etc").ok());
  EXPECT_FALSE(switchPaths("").ok());
}

}  // namespace
}  // namespace strata::network::testing
