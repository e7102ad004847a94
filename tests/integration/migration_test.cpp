// Live migration with the real default guest over loopback TCP, sandbox on:
// an idle guest and one dirtying memory (zstd, several channels) move to a
// `strata run --incoming` and go on there (a shell variable set before, the
// command the shell was running and its sleep's length on the guest's clock,
// a counter still ticking); a destination killed
// mid-transfer leaves the source running and answering; garbage sent to
// --incoming is refused in one line; bad migrate requests get 4xx; the
// destination announces the VM on its switch port (RARP, as QEMU does); a guest
// on a TAP keeps its network on the destination's own TAP (pings both ways);
// post-copy moves a guest dirtying memory, whose data stays intact; a link
// cut mid-transfer leaves the source running and the destination refusing;
// a link cut right after a post-copy switch-over leaves both sides up,
// postcopy-paused, until a shutdown ends each;
// the stream over TLS, and a source without TLS refused by a TLS destination;
// with --with-disks, a guest writing its raw and qcow2 disks moves to separate
// disk files (byte for byte what it wrote), with post-copy too, into files the
// destination makes as the source announces them, and a destination killed
// mid disk copy leaves the source running on its intact disk; on shared storage the
// destination sees every block the source wrote to its qcow2 and raw disks.
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <future>
#include <thread>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "child_process.h"
#include "guest_runner.h"
#include "loopback_ports.h"

namespace strata::test {
namespace {

struct Migration {
  ProcessResult source;
  ProcessResult destination;
  ProcessResult command;  // `strata vm migrate`
};

// Boots the source with `sourceInput`; once it printed `ready`, runs `strata vm
// migrate ... MIGRATE_OPTIONS` to a destination started with `destinationInput`
// (through the address `route` gives for the destination's port, if any).
// boardOptions go to both sides, sourceOptions and destinationOptions (--disk ...) to one each.
Migration migrate(const std::string& name, const std::string& sourceInput, const std::string& ready,
                  const std::string& migrateOptions, const std::string& destinationInput,
                  const WhileRunning& whileDestinationRuns = {},
                  const std::vector<std::string>& boardOptions = {}, const std::vector<std::string>& sourceOptions = {},
                  const std::vector<std::string>& destinationOptions = {},
                  const std::function<std::string(int port)>& route = {}) {
  const std::string socket = temporaryPath(name + ".sock");
  ::unlink(socket.c_str());
  const int port = freePort();
  const std::string to = "tcp:127.0.0.1:" + std::to_string(port);
  const std::string sendTo = route ? route(port) : to;  // the address the source is given
  Migration result;
  std::atomic<pid_t> destinationPid{0};
  auto destination = std::async(std::launch::async, [&] {
    std::vector<std::string> args{"--incoming", to};
    args.insert(args.end(), boardOptions.begin(), boardOptions.end());
    args.insert(args.end(), destinationOptions.begin(), destinationOptions.end());
    return runStrata(args, destinationInput, std::chrono::seconds(400),
                     [&](pid_t pid, const std::string& output) {
                       destinationPid = pid;
                       if (whileDestinationRuns) whileDestinationRuns(pid, output);
                     });
  });
  bool started = false;
  std::vector<std::string> sourceArgs{"--api-socket", socket};
  sourceArgs.insert(sourceArgs.end(), boardOptions.begin(), boardOptions.end());
  sourceArgs.insert(sourceArgs.end(), sourceOptions.begin(), sourceOptions.end());
  result.source = runStrata(sourceArgs, sourceInput, std::chrono::seconds(400),
                            [&](pid_t, const std::string& output) {
                              if (started || output.find(ready) == std::string::npos) return;
                              started = true;
                              // The destination may still be starting on a loaded host.
                              for (int tries = 0; tries < 600 && !listensOn(port); ++tries)
                                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                              result.command = runShell(strataBinary() + " vm migrate --api-socket " + socket +
                                                        " --to " + sendTo + " " + migrateOptions + " 2>&1");
                            });
  EXPECT_TRUE(started) << result.source.output;
  // A migration that never completed leaves the destination waiting: stop it.
  if ((!started || result.command.exitCode != 0) && destinationPid != 0) ::kill(destinationPid, SIGKILL);
  result.destination = destination.get();
  return result;
}

TEST(Migration, IdleGuestMovesWithItsShellStateAndRunningCommand) {
  // The shell is inside `sleep` when the VM moves: the destination finishes the line it was running,
  // and says how long the sleep took on the guest's own clock (/proc/uptime, in centiseconds).
  const auto began = std::chrono::steady_clock::now();
  auto moved = migrate("migrate-idle",
                       "X=hello42; cs() { awk '{ printf \"%d\", $1 * 100 }' /proc/uptime; }; a=$(cs); "
                       "echo set-$((40+2)); sleep 10; b=$(cs); echo after-$X-$((6*7)) slept-$((b - a))-cs\n",
                       "set-42", "", "echo dest-$X\npoweroff\n");
  const auto hostCentiseconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count() / 10;
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.command.output, "migrated to tcp:127.0.0.1:"));
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_EQ(moved.source.output.find("after-hello42"), std::string::npos) << "the source must stop once the VM moved";
  EXPECT_EQ(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "after-hello42-42"));
  EXPECT_TRUE(contains(moved.destination.output, "dest-hello42"));
  EXPECT_EQ(moved.destination.output.find("Linux version"), std::string::npos) << "the destination must not boot";
  // Guest time went on across the move: the timer did not fire early (no jump forward, no time
  // lost backwards), and the guest's clock never ran ahead of the host's (the pause is left out).
  const size_t slept = moved.destination.output.find("slept-");
  ASSERT_NE(slept, std::string::npos) << moved.destination.output;
  const long sleptCentiseconds = std::stol(moved.destination.output.substr(slept + 6));
  EXPECT_GE(sleptCentiseconds, 1000) << moved.destination.output;
  EXPECT_LE(sleptCentiseconds, hostCentiseconds) << moved.destination.output;
}

// The VM side of a `strata switch` port (strata-attach/1), to watch what the switch floods.
int attachObserver(const std::string& socketPath) {
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socketPath.c_str());
  for (int tries = 0; tries < 100 && ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0; ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string hello = "strata-attach/1 vlan=1";
  char reply[256] = {};
  if (::send(fd, hello.data(), hello.size(), 0) != static_cast<ssize_t>(hello.size()) ||
      ::recv(fd, reply, sizeof reply - 1, 0) <= 0 || std::string(reply).rfind("ok ", 0) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(Migration, DestinationAnnouncesTheVmOnItsSwitch) {
  const std::string runDir = temporaryPath("migrate-switch-" + std::to_string(::getpid()));
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  const std::string name = "mig" + std::to_string(::getpid());
  Child switchProcess({strataBinary(), "switch", name}, "", temporaryPath("migrate-switch.log"));
  const int observer = attachObserver(runDir + "/switch-" + name + ".sock");
  ASSERT_GE(observer, 0) << switchProcess.output();
  auto moved = migrate("migrate-switch", "echo ready-$((3*3))\n", "ready-9", "", "sleep 1; echo moved-$((4*4))\npoweroff\n", {},
                       {"--net", "switch=" + name});
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.destination.output, "moved-16"));
  // Frames behind the port's 10-byte virtio_net_hdr: broadcast RARP from the NIC's MAC.
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  int announcements = 0;
  uint8_t message[2048];
  for (ssize_t got; (got = ::recv(observer, message, sizeof message, MSG_DONTWAIT)) > 0;) {
    const uint8_t* frame = message + 10;
    if (got >= 10 + 60 && frame[12] == 0x80 && frame[13] == 0x35 && std::memcmp(frame + 6, mac, 6) == 0 &&
        std::all_of(frame, frame + 6, [](uint8_t byte) { return byte == 0xff; }) && std::memcmp(frame + 22, mac, 6) == 0)
      ++announcements;
  }
  ::close(observer);
  EXPECT_GE(announcements, 1) << "the destination announces the VM";
  EXPECT_LE(announcements, 5) << "five rounds at most";
  ::unsetenv("STRATA_RUN_DIR");
}

// A network namespace whose bridge br0 holds 10.77.0.1/24 and two TAP ports,
// stap0 and stap1; the test thread (and every process and thread it starts) is inside it
// until the namespace goes, so `--incoming tcp:127.0.0.1:...` and /proc/net/tcp are its own.
class TwoTapBridge {
 public:
  TwoTapBridge() : name_("strata-mtap-" + std::to_string(::getpid())), home_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    auto made = runShell("ip netns add " + name_ + " && ip netns exec " + name_ +
                         " sh -c 'ip link add br0 type bridge && ip tuntap add dev stap0 mode tap && "
                         "ip tuntap add dev stap1 mode tap && ip link set stap0 master br0 && ip link set stap1 master br0 && "
                         "ip addr add 10.77.0.1/24 dev br0 && ip link set stap0 up && ip link set stap1 up && "
                         "ip link set br0 up && ip link set lo up' 2>&1");
    why_ = made.output;
    if (made.exitCode != 0 || home_ < 0) return;
    const int inside = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    entered_ = inside >= 0 && ::setns(inside, CLONE_NEWNET) == 0;
    if (!entered_) why_ = std::string("setns: ") + std::strerror(errno);
    if (inside >= 0) ::close(inside);
  }
  ~TwoTapBridge() {
    if (entered_) ::setns(home_, CLONE_NEWNET);
    if (home_ >= 0) ::close(home_);
    runShell("ip netns delete " + name_ + " 2>/dev/null");
  }
  bool ok() const { return entered_; }
  const std::string& why() const { return why_; }

 private:
  std::string name_;
  int home_;
  bool entered_ = false;
  std::string why_;
};

// The VM moves from a source on TAP stap0 to a destination that opens its own TAP stap1
// (QEMU's model: each side names its TAP; one persistent TAP cannot have two owners).
// After the move the guest pings the host and answers the host's ping, the bridge
// learned the guest's MAC on stap1, and the destination's RARP announce came in on stap1.
TEST(Migration, GuestOnATapKeepsItsNetworkOnTheDestinationsTap) {
  TwoTapBridge bridge;
  if (!bridge.ok()) GTEST_SKIP() << "cannot create a network namespace with a bridge and two TAP devices here: " << bridge.why();
  // Every frame stap1 receives (ETH_P_ALL: the bridge takes them before a per-type socket would).
  const int capture = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  ASSERT_GE(capture, 0) << std::strerror(errno);
  sockaddr_ll port{};
  port.sll_family = AF_PACKET;
  port.sll_protocol = htons(ETH_P_ALL);
  port.sll_ifindex = static_cast<int>(::if_nametoindex("stap1"));
  ASSERT_EQ(::bind(capture, reinterpret_cast<sockaddr*>(&port), sizeof port), 0) << std::strerror(errno);
  ProcessResult hostPing, learned;  // once the guest runs on the destination
  auto moved = migrate("migrate-tap",
                       "ip link set eth0 up; ip addr add 10.77.0.2/24 dev eth0; ping -c 2 -W 5 10.77.0.1; "
                       "echo before-$((5*5))\n",
                       "before-25", "",
                       "ping -c 3 -W 5 10.77.0.1; echo moved-$((4*4)); sleep 6; echo done-$((7*7))\npoweroff\n",
                       [&](pid_t, const std::string& output) {
                         if (!learned.output.empty() || !contains(output, "moved-16")) return;
                         learned = runShell("bridge fdb show br br0 2>&1");
                         hostPing = runShell("ping -c 2 -W 5 10.77.0.2 2>&1");
                       },
                       {}, {"--net", "tap=stap0"}, {"--net", "tap=stap1"});
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.source.output, "2 packets transmitted, 2 packets received")) << moved.source.output;
  EXPECT_EQ(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "3 packets transmitted, 3 packets received")) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "done-49")) << moved.destination.output;
  EXPECT_TRUE(contains(learned.output, "52:54:00:12:34:56 dev stap1")) << learned.output;
  EXPECT_FALSE(contains(learned.output, "52:54:00:12:34:56 dev stap0")) << learned.output;
  EXPECT_TRUE(contains(hostPing.output, "2 packets transmitted, 2 received")) << hostPing.output;
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  int announcements = 0;
  uint8_t frame[2048];
  sockaddr_ll from{};
  socklen_t fromLength = sizeof from;
  for (ssize_t got; (got = ::recvfrom(capture, frame, sizeof frame, 0, reinterpret_cast<sockaddr*>(&from), &fromLength)) > 0;
       fromLength = sizeof from)
    if (from.sll_pkttype != PACKET_OUTGOING && got >= 42 && frame[12] == 0x80 && frame[13] == 0x35 &&
        std::memcmp(frame + 6, mac, 6) == 0)
      ++announcements;
  ::close(capture);
  EXPECT_GE(announcements, 1) << "the destination announces the VM on its own TAP";
}

// On one host the destination cannot take the TAP the source still holds (one owner
// per TAP that is not multi-queue): it says so at start, before any stream comes.
TEST(Migration, DestinationNamingATapStillInUseSaysSoAtStart) {
  TwoTapBridge bridge;
  if (!bridge.ok()) GTEST_SKIP() << "cannot create a network namespace with a bridge and two TAP devices here: " << bridge.why();
  const int held = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  ASSERT_GE(held, 0) << std::strerror(errno);
  ifreq request{};
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::snprintf(request.ifr_name, sizeof request.ifr_name, "stap0");
  ASSERT_EQ(::ioctl(held, TUNSETIFF, &request), 0) << std::strerror(errno);
  auto run = runStrata({"--incoming", "tcp:127.0.0.1:" + std::to_string(freePort()), "--net", "tap=stap0"}, "");
  ::close(held);
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "--net tap=stap0: TUNSETIFF")) << run.output;
  EXPECT_TRUE(contains(run.output, "busy")) << run.output;
}

TEST(Migration, GuestDirtyingMemoryMovesCompressedOverSeveralChannels) {
  // A counter ticking in /tmp and 16 MiB of page cache rewritten over and over (text, not zeros:
  // zero pages go as their number only) while the VM moves.
  const std::string workload =
      "X=$((1234*5678)); (i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; done) &\n"
      "(while :; do yes abcdefgh | head -c 16777216 > /tmp/blob; done) &\n"
      "sleep 2; echo dirtying-$X\n";
  auto moved = migrate("migrate-dirty", workload, "dirtying-7006652", "--channels 3 --compress --downtime-ms 20", 
                       "r() { v=; while [ -z \"$v\" ]; do v=$(cat /tmp/tick); done; echo $v; }\n"  // the loop may be mid-write
                       "a=$(r); sleep 1; b=$(r); [ \"$b\" -gt \"$a\" ] && echo ticking-$X\n"
                       "poweroff\n");
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output << moved.source.output;
  EXPECT_TRUE(contains(moved.command.output, "migrated to"));
  std::printf("%s", moved.command.output.c_str());
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_EQ(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "ticking-7006652"));
}

// Why post-copy cannot run on this host (empty: it can): it needs a userfaultfd
// able to serve shared memory, as guest RAM is a memfd.
std::string postcopyUnavailable() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC));
  if (fd < 0) {
    int device = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (device >= 0) fd = ::ioctl(device, USERFAULTFD_IOC_NEW, O_CLOEXEC);
    if (device >= 0) ::close(device);
  }
  if (fd < 0) return std::string("no userfaultfd on this host: ") + std::strerror(errno);
  uffdio_api api{UFFD_API, UFFD_FEATURE_MISSING_SHMEM, 0};
  const bool shmem = ::ioctl(fd, UFFDIO_API, &api) == 0;
  ::close(fd);
  return shmem ? "" : "this host's userfaultfd cannot serve shared memory";
}

TEST(Migration, PostcopyMovesADirtyingGuestAndItKeepsCounting) {
  if (auto why = postcopyUnavailable(); !why.empty()) GTEST_SKIP() << why;
  // 16 MiB of random data with its checksum taken before the move; a copy of it rewritten over
  // and over (renamed into place whole) and a counter ticking while the VM moves, so the pages the destination fetches
  // after the switch-over hold data that must arrive intact.
  const std::string workload =
      "dd if=/dev/urandom of=/tmp/buf bs=1M count=16 2>/dev/null; S=$(md5sum < /tmp/buf)\n"
      "(i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; done) &\n"
      "(while :; do cp /tmp/buf /tmp/c.new && mv /tmp/c.new /tmp/copy; done) &\n"
      "sleep 2; echo dirtying-$((1234*5678))\n";
  auto moved = migrate("migrate-postcopy", workload, "dirtying-7006652", "--postcopy",
                       "r() { v=; while [ -z \"$v\" ]; do v=$(cat /tmp/tick); done; echo $v; }\n"
                       "a=$(r); sleep 1; b=$(r); [ \"$b\" -gt \"$a\" ] && echo ticking-$((6*7))\n"
                       "[ \"$(md5sum < /tmp/buf)\" = \"$S\" ] && echo buffer-intact-$((7*8))\n"
                       "cmp /tmp/buf /tmp/copy && echo copy-intact-$((8*9))\n"
                       "poweroff\n");
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output << moved.source.output;
  std::printf("%s", moved.command.output.c_str());
  EXPECT_TRUE(contains(moved.command.output, "migrated to"));
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_EQ(moved.destination.exitCode, 0) << moved.destination.output;
  const size_t then = moved.command.output.find(", then ");
  ASSERT_NE(then, std::string::npos) << moved.command.output;
  EXPECT_GT(std::stoull(moved.command.output.substr(then + 7)), 0u) << "pages must have come after the switch-over";
  EXPECT_TRUE(contains(moved.command.output, " pages post-copy"));
  EXPECT_TRUE(contains(moved.destination.output, "ticking-42")) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "buffer-intact-56")) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "copy-intact-72")) << moved.destination.output;
}

// A TCP relay on loopback to `port` that cuts the link (both connections
// closed) once `cutAfter` bytes went from the source to the destination, or
// once it passed on the destination's answer line `cutAfterAnswer` (if any),
// running `atCut` (if any) first.
class CuttingRelay {
 public:
  CuttingRelay(int port, uint64_t cutAfter, std::string cutAfterAnswer = "", std::function<void()> atCut = {})
      : port_(port), cutAfter_(cutAfter), cutAfterAnswer_(std::move(cutAfterAnswer)), atCut_(std::move(atCut)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::getsockname(listen_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    EXPECT_EQ(::listen(listen_, 4), 0);
    address_ = fmt::format("tcp:127.0.0.1:{}", ntohs(address.sin_port));
    thread_ = std::thread([this] { relay(); });
  }
  ~CuttingRelay() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  const std::string& address() const { return address_; }
  bool cut() const { return cut_; }

 private:
  void relay() {
    pollfd waiting{listen_, POLLIN, 0};
    while (!stop_ && ::poll(&waiting, 1, 100) == 0) {}
    if (stop_) return;
    int source = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
    int destination = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (source >= 0 && ::connect(destination, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      uint64_t forwarded = 0;
      std::string answers = "\n";  // from the destination: answer lines only, until the cut
      auto answered = [&] {
        return !cutAfterAnswer_.empty() && answers.find("\n" + cutAfterAnswer_ + "\n") != std::string::npos;
      };
      char buffer[65536];
      pollfd ends[2] = {{source, POLLIN, 0}, {destination, POLLIN, 0}};
      while (!stop_ && forwarded < cutAfter_ && !answered()) {
        if (::poll(ends, 2, 100) <= 0) continue;
        for (int from = 0; from < 2; ++from) {
          if (ends[from].revents == 0) continue;
          ssize_t got = ::recv(ends[from].fd, buffer, from == 0 ? std::min<uint64_t>(sizeof buffer, cutAfter_ - forwarded)
                                                                : sizeof buffer, 0);
          if (got <= 0) return;
          if (::send(ends[1 - from].fd, buffer, static_cast<size_t>(got), MSG_NOSIGNAL) != got) return;
          if (from == 0) forwarded += static_cast<uint64_t>(got);
          else answers.append(buffer, static_cast<size_t>(got));
        }
      }
      cut_ = forwarded >= cutAfter_ || answered();
      if (cut_ && atCut_) atCut_();
    }
    ::close(source);
    ::close(destination);
  }
  int port_;
  uint64_t cutAfter_;
  std::string cutAfterAnswer_;
  std::function<void()> atCut_;
  int listen_ = -1;
  std::string address_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::thread thread_;
};

TEST(Migration, DestinationKilledMidTransferLeavesTheSourceRunning) {
  // The destination dies (SIGKILL) once 4 MiB of the first round went through a relay to it.
  std::atomic<pid_t> destination{0};
  std::unique_ptr<CuttingRelay> relay;
  auto moved = migrate(
      "migrate-killed", "X=alive7; echo go-$((1+1)); sleep 8; echo after-$X\npoweroff\n", "go-2", "", "",
      [&](pid_t pid, const std::string&) { destination = pid; }, {}, {}, {}, [&](int port) {
        relay = std::make_unique<CuttingRelay>(port, 4u << 20, "", [&] {
          if (pid_t pid = destination; pid > 0) ::kill(pid, SIGKILL);  // never 0: that would be our own group
        });
        return relay->address();
      });
  ASSERT_TRUE(relay);
  EXPECT_TRUE(relay->cut());
  EXPECT_NE(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_NE(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.command.output, "migration failed, the VM runs on here"));
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_TRUE(contains(moved.source.output, "after-alive7"));
}

TEST(Migration, LinkCutMidTransferLeavesTheSourceRunningAndTheDestinationRefuses) {
  std::unique_ptr<CuttingRelay> relay;
  auto moved = migrate("migrate-cut", "X=alive9; echo go-$((2+2)); sleep 8; echo after-$X\npoweroff\n", "go-4", "",
                       "echo dest-ran-$((5*5))\n", {}, {}, {}, {}, [&](int port) {
                         relay = std::make_unique<CuttingRelay>(port, 4u << 20);  // 4 MiB into the first round
                         return relay->address();
                       });
  ASSERT_TRUE(relay);
  EXPECT_TRUE(relay->cut());
  EXPECT_NE(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.command.output, "migration failed, the VM runs on here")) << moved.command.output;
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_TRUE(contains(moved.source.output, "after-alive9")) << moved.source.output;
  EXPECT_NE(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_FALSE(moved.destination.timedOut);
  EXPECT_TRUE(contains(moved.destination.output, "incoming migration refused: the source closed the connection"))
      << moved.destination.output;
  EXPECT_FALSE(contains(moved.destination.output, "dest-ran-25")) << "the destination must not start the guest";
}

// The number just before `what` in `text`, 0 if none.
uint64_t countBefore(const std::string& text, const std::string& what) {
  size_t end = text.find(what);
  size_t begin = end;
  while (begin != std::string::npos && begin > 0 && std::isdigit(static_cast<unsigned char>(text[begin - 1]))) --begin;
  return begin == end ? 0 : std::stoull(text.substr(begin, end - begin));
}

TEST(Migration, PostcopyLinkCutAfterTheSwitchOverPausesBothSidesUntilShutdown) {
  if (auto why = postcopyUnavailable(); !why.empty()) GTEST_SKIP() << why;
  const std::string sourceSocket = temporaryPath("postcopy-cut-source.sock");
  const std::string destinationSocket = temporaryPath("postcopy-cut-destination.sock");
  ::unlink(sourceSocket.c_str());
  ::unlink(destinationSocket.c_str());
  const int port = freePort();
  // The link drops as soon as the source has the destination's OK: most of the guest's dirty pages are still here.
  CuttingRelay relay(port, ~uint64_t{0}, "OK");
  auto destination = std::async(std::launch::async, [&] {
    return runStrata({"--incoming", "tcp:127.0.0.1:" + std::to_string(port), "--api-socket", destinationSocket}, "",
                     std::chrono::seconds(400));
  });
  const std::string strata = strataBinary();
  ProcessResult command, sourceStatus, destinationStatus, sourceShutdown, destinationShutdown;
  bool started = false;
  auto source = runStrata(
      {"--api-socket", sourceSocket},
      "dd if=/dev/urandom of=/tmp/buf bs=1M count=16 2>/dev/null\n"
      "(while :; do cp /tmp/buf /tmp/c.new && mv /tmp/c.new /tmp/copy; done) &\n"
      "sleep 2; echo dirtying-$((1234*5678))\n",
      std::chrono::seconds(400), [&](pid_t, const std::string& output) {
        if (started || output.find("dirtying-7006652") == std::string::npos) return;
        started = true;
        for (int tries = 0; tries < 600 && !listensOn(port); ++tries)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        command = runShell(strata + " vm migrate --api-socket " + sourceSocket + " --to " + relay.address() +
                           " --postcopy 2>&1");
        sourceStatus = runShell(strata + " vm status --api-socket " + sourceSocket + " 2>&1");
        // The destination notices the cut on its own.
        for (int tries = 0; tries < 300 && !contains(destinationStatus.output, "migration: postcopy-paused"); ++tries) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          destinationStatus = runShell(strata + " vm status --api-socket " + destinationSocket + " 2>&1");
        }
        sourceShutdown = runShell(strata + " vm shutdown --api-socket " + sourceSocket + " 2>&1");
        destinationShutdown = runShell(strata + " vm shutdown --api-socket " + destinationSocket + " 2>&1");
      });
  auto destinationEnded = destination.get();
  ASSERT_TRUE(started) << source.output;
  EXPECT_TRUE(relay.cut());
  EXPECT_NE(command.exitCode, 0) << command.output;
  EXPECT_TRUE(contains(command.output, "post-copy migration paused after the switch-over")) << command.output;
  // Both processes stayed up and say so; the source keeps the VM paused.
  EXPECT_TRUE(contains(sourceStatus.output, "migration: postcopy-paused")) << sourceStatus.output;
  EXPECT_TRUE(contains(sourceStatus.output, "state:   paused")) << sourceStatus.output;
  EXPECT_TRUE(contains(destinationStatus.output, "migration: postcopy-paused"))
      << destinationStatus.output << destinationEnded.output;
  EXPECT_GT(countBefore(destinationEnded.output, " pages still at the source"), 0u) << destinationEnded.output;
  // A shutdown ends each side cleanly, with a line saying what was dropped.
  EXPECT_EQ(sourceShutdown.exitCode, 0) << sourceShutdown.output;
  EXPECT_EQ(destinationShutdown.exitCode, 0) << destinationShutdown.output;
  EXPECT_FALSE(source.timedOut);
  EXPECT_EQ(source.exitCode, 0) << source.output;
  EXPECT_TRUE(contains(source.output, "the VM ended while post-copy migration was paused")) << source.output;
  EXPECT_FALSE(destinationEnded.timedOut);
  EXPECT_EQ(destinationEnded.exitCode, 0) << destinationEnded.output;
  EXPECT_TRUE(contains(destinationEnded.output, "shut down while post-copy migration is paused") ||
              contains(destinationEnded.output, "the VM ended while post-copy migration was paused"))
      << destinationEnded.output;
}

// A CA and a certificate for 127.0.0.1 signed by it, in DIR/ca-cert.pem and the
// layout `--tls-certs DIR` reads (server-cert.pem, server-key.pem); empty on success.
std::string makeTlsCertificates(const std::string& dir) {
  ::mkdir(dir.c_str(), 0700);
  std::ofstream(dir + "/ca.info") << "cn = strata migration test CA\nca\ncert_signing_key\nexpiration_days = 2\n";
  std::ofstream(dir + "/server.info") << "cn = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\n"
                                         "signing_key\nexpiration_days = 2\n";
  auto made = runShell("cd " + dir + " && certtool --generate-privkey --key-type=ecdsa --outfile ca-key.pem && "
                       "certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem && "
                       "certtool --generate-privkey --key-type=ecdsa --outfile server-key.pem && "
                       "certtool --generate-certificate --load-privkey server-key.pem --load-ca-certificate ca-cert.pem "
                       "--load-ca-privkey ca-key.pem --template server.info --outfile server-cert.pem 2>&1");
  return made.exitCode == 0 ? "" : made.output;
}

TEST(Migration, TlsStreamMovesTheVm) {
  if (runShell("command -v certtool").exitCode != 0) GTEST_SKIP() << "certtool (Debian: gnutls-bin) is not installed";
  const std::string dir = temporaryPath("migrate-tls-" + std::to_string(::getpid()));
  ASSERT_EQ(makeTlsCertificates(dir), "");
  auto moved = migrate("migrate-tls", "X=secret5; echo set-$((5*5)); sleep 5; echo after-$X\n", "set-25",
                       "--channels 2 --tls-ca " + dir + "/ca-cert.pem", "echo dest-$X\npoweroff\n", {}, {}, {},
                       {"--tls-certs", dir});
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output << moved.source.output << moved.destination.output;
  EXPECT_TRUE(contains(moved.command.output, "migrated to"));
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_EQ(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "after-secret5")) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "dest-secret5"));
}

TEST(Migration, SourceWithoutTlsIsRefusedByATlsDestinationAndRunsOn) {
  if (runShell("command -v certtool").exitCode != 0) GTEST_SKIP() << "certtool (Debian: gnutls-bin) is not installed";
  const std::string dir = temporaryPath("migrate-notls-" + std::to_string(::getpid()));
  ASSERT_EQ(makeTlsCertificates(dir), "");
  auto moved = migrate("migrate-notls", "X=plain3; echo go-$((3*3)); sleep 6; echo still-$X\npoweroff\n", "go-9", "",
                       "echo dest-ran-$((6*6))\n", {}, {}, {}, {"--tls-certs", dir});
  EXPECT_NE(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.command.output,
                       "migration failed, the VM runs on here: the destination refused the VM: this destination "
                       "requires TLS"))
      << moved.command.output;
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_TRUE(contains(moved.source.output, "still-plain3")) << moved.source.output;
  EXPECT_NE(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, "incoming migration refused: the source sent its stream without TLS"))
      << moved.destination.output;
  EXPECT_FALSE(contains(moved.destination.output, "dest-ran-36"));
}

TEST(Migration, GarbageSentToIncomingIsRefusedInOneLine) {
  const int port = freePort();
  auto destination = std::async(std::launch::async, [&] {
    return runStrata({"--incoming", "tcp:127.0.0.1:" + std::to_string(port)}, "", std::chrono::seconds(120));
  });
  int fd = -1;
  for (int tries = 0; tries < 600 && fd < 0; ++tries) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) break;
    ::close(fd);
    fd = -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(fd, 0);
  const std::string garbage = "GET / HTTP/1.1\r\nHost: strata\r\n\r\n" + std::string(100, 'x');
  EXPECT_EQ(::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL), static_cast<ssize_t>(garbage.size()));
  auto run = destination.get();
  ::close(fd);
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_FALSE(run.timedOut);
  EXPECT_TRUE(contains(run.output, "incoming migration refused: not a strata migration stream"));
  EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
}

TEST(Migration, BadRequestsAreRefusedAndAnUnreachableDestinationLeavesTheVmRunning) {
  const std::string socket = temporaryPath("migrate-bad.sock");
  ::unlink(socket.c_str());
  std::string answers;
  bool asked = false;
  auto run = runStrata({"--api-socket", socket}, "echo up-$((2+3)); sleep 3; echo still-$((3+4))\npoweroff\n",
                       std::chrono::seconds(240), [&](pid_t, const std::string& output) {
                         if (asked || output.find("up-5") == std::string::npos) return;
                         asked = true;
                         const std::string vm = strataBinary() + " vm migrate --api-socket " + socket;
                         for (const std::string& options :
                              {std::string("--to tcp:nowhere:1"), std::string("--to tcp:127.0.0.1:1 --channels 40"),
                               std::string("--to tcp:127.0.0.1:1 --tls-ca /nonexistent/ca.pem"),
                               "--to tcp:127.0.0.1:" + std::to_string(freePort())}) {
                           auto answer = runShell(vm + " " + options + " 2>&1");
                           answers += "[" + std::to_string(answer.exitCode) + "] " + answer.output;
                         }
                       });
  EXPECT_TRUE(asked);
  EXPECT_TRUE(contains(answers, "[1] strata vm: PUT /vm/migrate: 400"));
  EXPECT_TRUE(contains(answers, "expected tcp:HOST:PORT"));
  EXPECT_TRUE(contains(answers, "\"channels\" must be between 1 and 16"));
  EXPECT_TRUE(contains(answers, "\"tls_ca\": /nonexistent/ca.pem")) << answers;
  EXPECT_TRUE(contains(answers, "migration failed, the VM runs on here: connecting to tcp:127.0.0.1:"));
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "still-7"));
}

}  // namespace

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A disk image's guest-visible bytes (qcow2 converted to raw with strata's own tool).
std::string diskBytes(const std::string& path, const std::string& format) {
  if (format == "raw") return readFile(path);
  const std::string raw = path + ".raw";
  ::unlink(raw.c_str());
  auto converted = runShell(strataBinary() + " image convert -O raw " + path + " " + raw + " 2>&1");
  EXPECT_EQ(converted.exitCode, 0) << converted.output;
  return readFile(raw);
}

// A 64 MiB image in `format` whose bytes are 8 MiB of random data at 16 MiB, holes elsewhere; returns those bytes.
std::string makeDisk(const std::string& path, const std::string& format) {
  const std::string raw = path + ".seed";
  ::unlink(path.c_str());
  ::unlink(raw.c_str());
  auto made = runShell(fmt::format("truncate -s 64M {0} && head -c 8M /dev/urandom | dd of={0} bs=1M seek=16 conv=notrunc "
                                   "2>/dev/null && {1} image convert -O {2} {0} {3} 2>&1",
                                   raw, strataBinary(), format, path));
  EXPECT_EQ(made.exitCode, 0) << made.output;
  return readFile(raw);
}

std::string emptyDisk(const std::string& path, const std::string& format) {
  ::unlink(path.c_str());
  auto made = runShell(fmt::format("{} image create -f {} {} 64M 2>&1", strataBinary(), format, path));
  EXPECT_EQ(made.exitCode, 0) << made.output;
  return path;
}

// What `yes NAME-block-I | head -c 4096` puts in block I.
std::string guestBlock(const std::string& name, int index) {
  const std::string line = fmt::format("{}-block-{}\n", name, index);
  std::string block;
  while (block.size() < 4096) block += line;
  return block.substr(0, 4096);
}

// vda: raw here, qcow2 there; vdb the other way round. The guest writes block after block of
// both (each dd flushed) before, during and after the move; the destination's files must hold
// the source's data (the random 8 MiB) with every block the guest wrote, byte for byte.
// With kDestinationMakesDisks, the destination's --disk files do not exist: it makes them as
// the source announces its disks (vda raw, vdb qcow2, both 64 MiB). With kSharedStorage both
// sides run on the same files (no --with-disks): the destination, which opened them while the
// source still wrote, must see every block the source wrote and allocate after them.
enum class DestinationDisks { kEmptyFiles, kDestinationMakesDisks, kSharedStorage };
Migration moveGuestWritingItsDisks(const std::string& name, const std::string& migrateOptions,
                                   DestinationDisks disks = DestinationDisks::kEmptyFiles) {
  const std::string dir = temporaryPath(name);
  std::vector<std::string> seeds = {makeDisk(dir + "-src-vda.raw", "raw"), makeDisk(dir + "-src-vdb.qcow2", "qcow2")};
  std::vector<std::pair<std::string, std::string>> targets;
  std::vector<std::string> destinationDisks;
  const std::vector<std::string> sourceDisks = {"--disk", dir + "-src-vda.raw,format=raw", "--disk",
                                                dir + "-src-vdb.qcow2,format=qcow2"};
  if (disks == DestinationDisks::kSharedStorage) {
    targets = {{dir + "-src-vda.raw", "raw"}, {dir + "-src-vdb.qcow2", "qcow2"}};
    destinationDisks = sourceDisks;
  } else if (disks == DestinationDisks::kDestinationMakesDisks) {
    targets = {{dir + "-dst-vda.raw", "raw"}, {dir + "-dst-vdb.qcow2", "qcow2"}};
    for (const auto& [path, format] : targets) {
      ::unlink(path.c_str());
      destinationDisks.insert(destinationDisks.end(), {"--disk", path});
    }
  } else {
    targets = {{emptyDisk(dir + "-dst-vda.qcow2", "qcow2"), "qcow2"}, {emptyDisk(dir + "-dst-vdb.raw", "raw"), "raw"}};
    destinationDisks = {"--disk", targets[0].first + ",format=qcow2", "--disk", targets[1].first + ",format=raw"};
  }
  constexpr int kBlocks = 200;
  const std::string workload = fmt::format(
      "X=$((6*7)); w() {{ yes $2-block-$1 | head -c 4096 | dd of=/dev/$2 bs=4096 seek=$1 conv=notrunc,fsync 2>/dev/null; }}; "
      "i=0; while [ $i -lt {} ]; do w $i vda; w $i vdb; i=$((i+1)); [ $i = 20 ] && echo writing-$X; done; "
      "echo wrote-$i-$X\n",
      kBlocks);
  auto moved = migrate(name, workload, "writing-42", migrateOptions, "sync; poweroff\n", {}, {}, sourceDisks,
                       destinationDisks);
  EXPECT_EQ(moved.command.exitCode, 0) << moved.command.output << moved.source.output;
  std::printf("%s", moved.command.output.c_str());
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_EQ(moved.source.output.find(fmt::format("wrote-{}-42", kBlocks)), std::string::npos)
      << "the move happened before the guest was done";
  EXPECT_EQ(moved.destination.exitCode, 0) << moved.destination.output;
  EXPECT_TRUE(contains(moved.destination.output, fmt::format("wrote-{}-42", kBlocks)));
  const char* names[] = {"vda", "vdb"};
  for (size_t disk = 0; disk < 2; ++disk) {
    auto info = runShell(strataBinary() + " image info --output json " + targets[disk].first + " 2>&1");
    EXPECT_TRUE(contains(info.output, "\"format\": \"" + targets[disk].second + "\"")) << names[disk];
    if (targets[disk].second == "qcow2") {  // QEMU's own checker: no cluster two tables claim, no leak
      auto checked = runShell("qemu-img check -f qcow2 " + targets[disk].first + " 2>&1");
      EXPECT_EQ(checked.exitCode, 0) << names[disk] << ": " << checked.output;
    }
    std::string expected = seeds[disk];
    for (int block = 0; block < kBlocks; ++block) expected.replace(block * 4096u, 4096, guestBlock(names[disk], block));
    const std::string got = diskBytes(targets[disk].first, targets[disk].second);
    EXPECT_EQ(got.size(), expected.size()) << names[disk];
    size_t firstDifference = 0;
    while (firstDifference < std::min(got.size(), expected.size()) && got[firstDifference] == expected[firstDifference])
      ++firstDifference;
    EXPECT_EQ(firstDifference, got.size()) << names[disk] << ": the destination's disk differs from byte "
                                           << firstDifference << " (block " << firstDifference / 4096 << ")";
  }
  return moved;
}

}  // namespace

TEST(Migration, GuestWritingItsDisksOnSharedStorageMovesWithoutLosingABlock) {
  moveGuestWritingItsDisks("migrate-shared-disks", "", DestinationDisks::kSharedStorage);
}

TEST(Migration, GuestWritingItsDisksMovesWithThemToSeparateFiles) {
  moveGuestWritingItsDisks("migrate-disks", "--with-disks");
}

TEST(Migration, DestinationMakesMissingDiskFilesAsTheSourceAnnouncesThem) {
  moveGuestWritingItsDisks("migrate-make-disks", "--with-disks", DestinationDisks::kDestinationMakesDisks);
}

// A destination whose disk file is missing waits for the disk manifest: a
// source migrating without --with-disks is refused, runs on, and the
// destination makes no file.
TEST(Migration, MissingDestinationDiskWithoutWithDisksIsRefused) {
  const std::string source = temporaryPath("migrate-nodisks-src.raw"), target = temporaryPath("migrate-nodisks-dst.raw");
  makeDisk(source, "raw");
  ::unlink(target.c_str());
  auto moved = migrate("migrate-nodisks", "echo go-$((1+1)); sleep 5; echo still-$((3*3))\npoweroff\n", "go-2", "", "",
                       {}, {}, {"--disk", source + ",format=raw"}, {"--disk", target});
  EXPECT_NE(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.command.output + moved.destination.output, "does not mirror its disks"));
  EXPECT_NE(moved.destination.exitCode, 0);
  EXPECT_TRUE(contains(moved.source.output, "still-9")) << "the source runs on";
  EXPECT_NE(::access(target.c_str(), F_OK), 0) << "the refused destination made its disk file";
}

TEST(Migration, PostcopyWithDisksSendsTheDisksWholeBeforeTheSwitchOver) {
  // Post-copy fetches only RAM after the switch-over: the disks' last blocks must be there before it.
  if (auto why = postcopyUnavailable(); !why.empty()) GTEST_SKIP() << why;
  auto moved = moveGuestWritingItsDisks("migrate-disks-postcopy", "--with-disks --postcopy");
  EXPECT_TRUE(contains(moved.command.output, " pages post-copy")) << moved.command.output;
}

TEST(Migration, DestinationKilledMidDiskCopyLeavesTheSourceOnItsIntactDisk) {
  // 256 MiB of random data to copy; the destination dies once 16 MiB of it landed in its file.
  const std::string source = temporaryPath("migrate-disk-kill-src.raw");
  const std::string target = temporaryPath("migrate-disk-kill-dst.raw");
  auto made = runShell(fmt::format("head -c 256M /dev/urandom > {0} && truncate -s 0 {1} && truncate -s 256M {1}", source, target));
  ASSERT_EQ(made.exitCode, 0) << made.output;
  const std::string sum = runShell("sha256sum " + source + " | cut -c1-64").output.substr(0, 64);
  // The guest hashes the first 16 MiB (hashing all of it would take the emulated guest long).
  const std::string headSum = runShell("head -c 16M " + source + " | sha256sum | cut -c1-64").output.substr(0, 64);
  std::atomic<bool> killed{false};
  auto moved = migrate(
      "migrate-disk-kill",
      "X=alive7; echo go-$((1+1)); sleep 10; echo after-$X; dd if=/dev/vda bs=1M count=16 2>/dev/null | sha256sum\npoweroff\n",
      "go-2", "--with-disks", "",
      [&](pid_t pid, const std::string&) {
        struct stat status {};
        if (killed || ::stat(target.c_str(), &status) != 0 || status.st_blocks * 512 < (16 << 20)) return;
        ::kill(pid, SIGKILL);
        killed = true;
      },
      {}, {"--disk", source + ",format=raw"}, {"--disk", target + ",format=raw"});
  EXPECT_TRUE(killed) << "the disk copy ended before the destination could be killed";
  EXPECT_NE(moved.command.exitCode, 0) << moved.command.output;
  EXPECT_TRUE(contains(moved.command.output, "migration failed, the VM runs on here"));
  EXPECT_EQ(moved.source.exitCode, 0) << moved.source.output;
  EXPECT_TRUE(contains(moved.source.output, "after-alive7"));
  EXPECT_TRUE(contains(moved.source.output, headSum)) << "the guest reads its disk as it was";
  EXPECT_EQ(runShell("sha256sum " + source + " | cut -c1-64").output.substr(0, 64), sum);
}

}  // namespace strata::test
