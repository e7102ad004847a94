// OpenFlow 1.3 against a running `strata switch NAME --openflow ptcp:0`, driven
// by Open vSwitch's own ovs-ofctl (Debian's openvswitch-common): flows added,
// listed, modified and deleted that way change which frames pass between two
// ports the test attaches over the switch's UNIX socket (speaking the VM side of
// the attach protocol itself); port counters and `show` read back. Malformed
// controllers (random bytes, a truncated header, an impossible length, an
// oversize message never completed, a wrong version) and a controller that
// never reads get refused or ignored while frames keep flowing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <thread>

#include "child_process.h"
#include "guest_runner.h"

namespace strata::test {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint8_t kOfpVersion = 4;
constexpr uint8_t kTypeHello = 0, kTypeError = 1, kTypeEchoRequest = 2, kTypeEchoReply = 3;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits up to timeoutMs for one message (a datagram, or bytes of a stream); nullopt on timeout or EOF.
std::optional<Bytes> receive(int fd, int timeoutMs, size_t max = 65536) {
  pollfd ready{fd, POLLIN, 0};
  if (::poll(&ready, 1, timeoutMs) <= 0) return std::nullopt;
  Bytes buffer(max);
  ssize_t got = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (got <= 0) return std::nullopt;
  buffer.resize(static_cast<size_t>(got));
  return buffer;
}

// The VM side of a switch port: "strata-attach/1 vlan=1 mac=..", then one frame per
// message behind a 10-byte virtio_net_hdr (all zero: a finished frame, no offloads).
Fd attachPort(const std::string& socketPath) {
  Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socketPath.c_str());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return Fd();
  std::string hello = "strata-attach/1 vlan=1";
  if (::send(fd.get(), hello.data(), hello.size(), 0) != static_cast<ssize_t>(hello.size())) return Fd();
  auto reply = receive(fd.get(), 5000);
  if (!reply || std::string(reply->begin(), reply->end()).rfind("ok ", 0) != 0) return Fd();
  return fd;
}

// An Ethernet/IPv4/UDP frame from MAC ..:0S to MAC ..:0D, for IP 10.0.0.DIP, `bytes` long.
Bytes udpFrame(uint8_t srcMac, uint8_t dstMac, uint8_t dstIp, size_t bytes = 64) {
  Bytes frame(bytes, 0);
  Bytes head = {0x52, 0x54, 0, 0, 0, dstMac, 0x52, 0x54, 0, 0, 0, srcMac, 0x08, 0x00,
                0x45, 0,    0, 0, 0, 0,      0,    0,    64, 17, 0, 0,  10,   0,
                0,    srcMac, 10, 0, 0, dstIp, 0x13, 0x88, 0x13, 0x89};
  std::copy(head.begin(), head.end(), frame.begin());
  frame[16] = static_cast<uint8_t>((bytes - 14) >> 8);
  frame[17] = static_cast<uint8_t>(bytes - 14);
  return frame;
}

constexpr size_t kPortHeaderBytes = 10;

bool sendFrame(int fd, const Bytes& frame) {
  Bytes message(kPortHeaderBytes, 0);
  message.insert(message.end(), frame.begin(), frame.end());
  return ::send(fd, message.data(), message.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(message.size());
}

// One frame from a switch port, its virtio_net_hdr dropped.
std::optional<Bytes> receiveFrame(int fd, int timeoutMs) {
  auto message = receive(fd, timeoutMs);
  if (!message || message->size() < kPortHeaderBytes) return std::nullopt;
  return Bytes(message->begin() + kPortHeaderBytes, message->end());
}

Bytes ofMessage(uint8_t type, Bytes body = {}, uint8_t version = kOfpVersion, uint32_t xid = 1) {
  size_t length = 8 + body.size();
  Bytes out = {version, type, static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length), 0, 0, 0,
               static_cast<uint8_t>(xid)};
  for (uint8_t byte : body) out.push_back(byte);  // (insert() of an empty body trips GCC 12's -Warray-bounds)
  return out;
}

bool sendAll(int fd, const Bytes& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Everything the switch sends on a controller connection until it closes it (or timeoutMs of silence).
struct Transcript {
  std::vector<Bytes> messages;
  bool closed = false;
  bool has(uint8_t type, std::optional<uint16_t> errorType = {}, std::optional<uint16_t> errorCode = {}) const {
    for (const auto& m : messages) {
      if (m[1] != type) continue;
      if (errorType && (m.size() < 12 || (m[8] << 8 | m[9]) != *errorType)) continue;
      if (errorCode && (m[10] << 8 | m[11]) != *errorCode) continue;
      return true;
    }
    return false;
  }
};

Transcript readUntilClosed(int fd, int timeoutMs) {
  Transcript transcript;
  Bytes stream;
  for (;;) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, timeoutMs) <= 0) break;
    uint8_t chunk[4096];
    ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) {
      transcript.closed = true;
      break;
    }
    stream.insert(stream.end(), chunk, chunk + got);
    while (stream.size() >= 8) {
      size_t length = stream[2] << 8 | stream[3];
      if (length < 8 || stream.size() < length) break;
      transcript.messages.emplace_back(stream.begin(), stream.begin() + static_cast<ptrdiff_t>(length));
      stream.erase(stream.begin(), stream.begin() + static_cast<ptrdiff_t>(length));
    }
  }
  return transcript;
}

class OpenFlow : public ::testing::Test {
 protected:
  void SetUp() override {
    if (runShell("ovs-ofctl --version").exitCode != 0)
      GTEST_SKIP() << "ovs-ofctl is not installed (scripts/setup.sh installs openvswitch-common)";
    runDir_ = temporaryPath("openflow-" + std::to_string(::getpid()));
    ::mkdir(runDir_.c_str(), 0755);
    ::setenv("STRATA_RUN_DIR", runDir_.c_str(), 1);
    name_ = "of" + std::to_string(::getpid());
    switch_ = std::make_unique<Child>(std::vector<std::string>{strataBinary(), "switch", name_, "--openflow", "ptcp:0"},
                                      "", temporaryPath("openflow-switch.log"));
    target_ = openFlowTarget(*switch_);
    ASSERT_FALSE(target_.empty()) << "the switch did not report its OpenFlow port:\n" << switch_->output();
    port_ = static_cast<uint16_t>(std::stoi(target_.substr(target_.rfind(':') + 1)));
    std::string socketPath = runDir_ + "/switch-" + name_ + ".sock";
    for (int i = 0; i < 50 && ::access(socketPath.c_str(), F_OK) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    a_ = attachPort(socketPath);  // OpenFlow port 1
    b_ = attachPort(socketPath);  // port 2
    ASSERT_GE(a_.get(), 0);
    ASSERT_GE(b_.get(), 0);
    ASSERT_TRUE(sendFrame(b_.get(), udpFrame(2, 0xff, 1)));  // the switch learns B's MAC
    receiveFrame(a_.get(), 1000);  // B's frame, flooded to A
  }
  void TearDown() override {
    if (!switch_) return;
    switch_->kill(SIGTERM);
    EXPECT_EQ(switch_->exitCode(), 0) << switch_->output();
  }

  ProcessResult ofctl(const std::string& command, const std::string& arguments = "") {
    return runShell("ovs-ofctl -O OpenFlow13 " + command + " " + target_ + " " + arguments + " 2>&1");
  }
  // Sends a frame A -> B to 10.0.0.dstIp; true when B receives it.
  bool passes(uint8_t dstIp, size_t bytes = 64) {
    auto frame = udpFrame(1, 2, dstIp, bytes);
    if (!sendFrame(a_.get(), frame)) return false;
    auto got = receiveFrame(b_.get(), 300);
    return got && *got == frame;
  }
  Fd controller() {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    return fd;
  }

  std::string runDir_, name_, target_;
  uint16_t port_ = 0;
  std::unique_ptr<Child> switch_;
  Fd a_, b_;
};

TEST_F(OpenFlow, OvsOfctlManagesFlowsThatChangeForwarding) {
  ASSERT_TRUE(passes(2));
  auto added = ofctl("add-flow", "\"priority=100,ip,nw_dst=10.0.0.2,actions=drop\"");
  ASSERT_EQ(added.exitCode, 0) << added.output;
  EXPECT_FALSE(passes(2)) << "ovs-ofctl's drop rule let the frame through";
  EXPECT_TRUE(passes(3)) << "the drop rule stopped another destination";

  auto flows = ofctl("dump-flows");
  EXPECT_EQ(flows.exitCode, 0) << flows.output;
  EXPECT_TRUE(contains(flows.output, "n_packets=1,")) << flows.output;
  EXPECT_TRUE(contains(flows.output, "priority=100,ip,nw_dst=10.0.0.2 actions=drop")) << flows.output;
  // One table: the rule OpenFlow added is the one `strata switch flow list` shows.
  auto listed = runShell(strataBinary() + " switch flow list " + name_ + " 2>&1");
  EXPECT_TRUE(contains(listed.output, "priority=100 packets=1 bytes=64 dl_type=0x0800,nw_dst=10.0.0.2 actions=drop"))
      << listed.output;

  // Redirect 10.0.0.3 back to A only, then modify it to go to B after all.
  ASSERT_EQ(ofctl("add-flow", "\"priority=200,udp,nw_dst=10.0.0.3,tp_dst=5001,actions=output:1\"").exitCode, 0);
  EXPECT_FALSE(passes(3));
  ASSERT_EQ(ofctl("mod-flows", "\"udp,nw_dst=10.0.0.3,actions=output:2\"").exitCode, 0);
  EXPECT_TRUE(passes(3));

  auto ports = ofctl("dump-ports");
  EXPECT_EQ(ports.exitCode, 0) << ports.output;
  EXPECT_TRUE(contains(ports.output, "2 ports")) << ports.output;
  EXPECT_TRUE(std::regex_search(ports.output, std::regex("port +1: rx pkts=5, bytes=320,"))) << ports.output;
  auto show = ofctl("show");
  EXPECT_EQ(show.exitCode, 0) << show.output;
  EXPECT_TRUE(contains(show.output, " 1(vm-")) << show.output;
  EXPECT_TRUE(contains(show.output, "n_tables:1")) << show.output;

  ASSERT_EQ(ofctl("del-flows", "\"ip,nw_dst=10.0.0.2\"").exitCode, 0);
  EXPECT_TRUE(passes(2)) << "deleting the rule should let the frame through again";
  ASSERT_EQ(ofctl("del-flows").exitCode, 0);
  auto empty = ofctl("dump-flows");
  EXPECT_EQ(empty.output.find("priority="), std::string::npos) << empty.output;
  auto refused = ofctl("add-flow", "\"priority=1,tcp,tp_dst=22,actions=group:1\"");
  EXPECT_NE(refused.exitCode, 0) << "groups are not supported: " << refused.output;

  // A hard timeout removes the rule by itself (the switch sweeps every second).
  ASSERT_EQ(ofctl("add-flow", "\"hard_timeout=1,priority=300,arp,actions=drop\"").exitCode, 0);
  EXPECT_TRUE(contains(ofctl("dump-flows").output, "hard_timeout=1, priority=300,arp actions=drop"));
  std::string remaining;
  for (int i = 0; i < 50 && contains(remaining = ofctl("dump-flows").output, "priority=300"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(contains(remaining, "priority=300")) << remaining;
}

TEST_F(OpenFlow, MalformedControllersAreRefusedWhileFramesKeepFlowing) {
  std::mt19937 random(7);
  {
    Fd noise = controller();
    Bytes bytes(4000);
    for (auto& b : bytes) b = static_cast<uint8_t>(random());
    sendAll(noise.get(), bytes);
    readUntilClosed(noise.get(), 500);
  }
  {
    Fd truncated = controller();
    sendAll(truncated.get(), {kOfpVersion, kTypeHello, 0});
  }
  {
    Fd impossible = controller();  // a length shorter than the header: refused, then closed
    sendAll(impossible.get(), ofMessage(kTypeHello));
    Bytes bad = ofMessage(kTypeEchoRequest);
    bad[3] = 4;
    sendAll(impossible.get(), bad);
    auto transcript = readUntilClosed(impossible.get(), 3000);
    EXPECT_TRUE(transcript.has(kTypeError, 1, 6)) << "no BAD_REQUEST/BAD_LEN";
    EXPECT_TRUE(transcript.closed);
  }
  {
    Fd oldVersion = controller();  // OpenFlow 1.0 only: HELLO_FAILED, then closed
    sendAll(oldVersion.get(), ofMessage(kTypeHello, {}, 1));
    auto transcript = readUntilClosed(oldVersion.get(), 3000);
    EXPECT_TRUE(transcript.has(kTypeHello));
    EXPECT_TRUE(transcript.has(kTypeError, 0, 0)) << "no HELLO_FAILED/INCOMPATIBLE";
    EXPECT_TRUE(transcript.closed);
  }
  {
    Fd wrongVersion = controller();  // after 1.3 is agreed, a 1.0 message is refused but the session goes on
    sendAll(wrongVersion.get(), ofMessage(kTypeHello));
    sendAll(wrongVersion.get(), ofMessage(kTypeEchoRequest, {}, 1));
    sendAll(wrongVersion.get(), ofMessage(kTypeEchoRequest, {1, 2, 3}));
    auto transcript = readUntilClosed(wrongVersion.get(), 500);
    EXPECT_TRUE(transcript.has(kTypeError, 1, 0)) << "no BAD_REQUEST/BAD_VERSION";
    EXPECT_TRUE(transcript.has(kTypeEchoReply));
    EXPECT_FALSE(transcript.closed);
  }
  // A message announced as 65535 bytes that never completes holds only its own connection.
  Fd oversize = controller();
  sendAll(oversize.get(), ofMessage(kTypeHello));
  Bytes partial = ofMessage(kTypeEchoRequest, Bytes(100, 0));
  partial[2] = 0xff;
  partial[3] = 0xff;
  sendAll(oversize.get(), partial);

  // Connections that never say HELLO cannot take every slot (16) from real controllers.
  std::vector<Fd> silent;
  for (int i = 0; i < 20; ++i) silent.push_back(controller());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(readUntilClosed(silent.front().get(), 2000).closed) << "the oldest silent connection stayed";

  EXPECT_TRUE(passes(2)) << "forwarding stopped after malformed controllers";
  auto show = ofctl("show");
  EXPECT_EQ(show.exitCode, 0) << show.output;
  ASSERT_EQ(ofctl("add-flow", "\"priority=100,ip,nw_dst=10.0.0.2,actions=drop\"").exitCode, 0);
  EXPECT_FALSE(passes(2));
}

TEST_F(OpenFlow, ControllerThatNeverReadsDoesNotStopForwarding) {
  // Every frame goes to the controllers (and on by normal learning): a stalled one falls behind at once.
  ASSERT_EQ(ofctl("add-flow", "\"priority=0,actions=controller,normal\"").exitCode, 0);
  Fd stalled = controller();
  int small = 4096;
  ::setsockopt(stalled.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sendAll(stalled.get(), ofMessage(kTypeHello));
  // Requests it never reads the answers to, as many as the socket takes without blocking.
  Bytes echo = ofMessage(kTypeEchoRequest, Bytes(4000, 0x5a));
  for (int i = 0; i < 2000; ++i)
    if (::send(stalled.get(), echo.data(), echo.size(), MSG_DONTWAIT | MSG_NOSIGNAL) <= 0) break;

  constexpr int kFrames = 3000;
  int arrived = 0;
  for (int i = 0; i < kFrames; ++i) arrived += passes(2, 1400) ? 1 : 0;
  EXPECT_EQ(arrived, kFrames) << "frames were lost while a controller stalled";
  auto flows = ofctl("dump-flows");
  EXPECT_EQ(flows.exitCode, 0) << flows.output;
  EXPECT_TRUE(contains(flows.output, "n_packets=" + std::to_string(kFrames) + ",")) << flows.output;
  // The stalled controller fell behind: its PACKET_INs were dropped, not waited for.
  auto ports = runShell(strataBinary() + " switch port list " + name_ + " --json 2>&1");
  std::smatch dropped;
  ASSERT_TRUE(std::regex_search(ports.output, dropped, std::regex("\"packet_in_dropped\":([0-9]+)"))) << ports.output;
  EXPECT_GT(std::stoull(dropped[1]), 0u) << ports.output;
}

// A controller hears of ports that attach (a VM starting) and go (its process ending).
TEST_F(OpenFlow, ControllersHearOfPortsComingAndGoing) {
  Fd watcher = controller();
  sendAll(watcher.get(), ofMessage(kTypeHello));
  sendAll(watcher.get(), ofMessage(kTypeEchoRequest));  // its reply: the session is up
  auto upTo = [&](uint8_t type) {
    for (int i = 0; i < 20; ++i) {
      auto got = readUntilClosed(watcher.get(), 100);
      for (const auto& m : got.messages)
        if (m[1] == type) return std::optional<Bytes>(m);
    }
    return std::optional<Bytes>();
  };
  ASSERT_TRUE(upTo(kTypeEchoReply));
  constexpr uint8_t kTypePortStatus = 12;
  std::optional<Bytes> added, removed;
  {
    Fd third = attachPort(runDir_ + "/switch-" + name_ + ".sock");
    ASSERT_GE(third.get(), 0);
    added = upTo(kTypePortStatus);
  }
  removed = upTo(kTypePortStatus);
  ASSERT_TRUE(added && added->size() == 80u);
  EXPECT_EQ((*added)[8], 0) << "OFPPR_ADD";
  EXPECT_EQ((*added)[19], 3) << "port 3";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(added->data() + 32), 3), "vm-");
  ASSERT_TRUE(removed && removed->size() == 80u);
  EXPECT_EQ((*removed)[8], 1) << "OFPPR_DELETE";
  EXPECT_EQ((*removed)[19], 3);
}

// Replies that back up past the switch's limit pause a controller's requests, even ones already
// received; once it reads, every request gets its answer.
TEST_F(OpenFlow, ControllerThatReadsLateGetsEveryReply) {
  std::string rules = temporaryPath("openflow-rules.txt");
  {
    std::ofstream file(rules);
    for (int i = 0; i < 1000; ++i) file << "priority=" << 1000 + i << ",tcp,tp_dst=" << i << ",actions=output:2\n";
  }
  auto added = ofctl("add-flows", rules);
  ASSERT_EQ(added.exitCode, 0) << added.output;

  // 60 small flow-stats requests (one read for the switch), each answered by ~100 KB of statistics.
  constexpr int kRequests = 60;
  Bytes stream = ofMessage(kTypeHello);
  Bytes flowStats = {0, 1, 0, 0, 0, 0, 0, 0,  // OFPMP_FLOW
                     0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  flowStats.resize(8 + 32, 0);
  flowStats.insert(flowStats.end(), {0, 1, 0, 4, 0, 0, 0, 0});  // an empty OXM match
  for (int i = 0; i < kRequests; ++i) {
    Bytes request = ofMessage(18, flowStats);  // OFPT_MULTIPART_REQUEST
    stream.insert(stream.end(), request.begin(), request.end());
  }
  Fd slow = controller();
  ASSERT_TRUE(sendAll(slow.get(), stream));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the replies back up first
  EXPECT_TRUE(passes(2)) << "forwarding waited on the backed-up controller";
  auto transcript = readUntilClosed(slow.get(), 3000);
  int complete = 0;  // replies whose last part arrived (OFPMPF_REPLY_MORE clear)
  for (const auto& m : transcript.messages) complete += m[1] == 19 && m.size() >= 16 && (m[11] & 1) == 0 ? 1 : 0;
  EXPECT_EQ(complete, kRequests);
  EXPECT_FALSE(transcript.closed);
}

}  // namespace
}  // namespace strata::test
