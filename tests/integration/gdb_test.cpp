// `strata run --gdb`: Debian's gdb-multiarch attaches to a booting kernel,
// stops at a kernel function by its symbol from vmlinux, reads registers and
// memory, single-steps and detaches, after which the guest boots on to its
// shell; on both engines. A raw client then feeds the stub bad packets,
// interrupts the guest and vanishes mid-packet, and the VM runs on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "child_process.h"
#include "guest_runner.h"

namespace strata::test {
namespace {

// The port a `strata run --gdb tcp:127.0.0.1:0` child printed; 0 if it did not within 10 s.
int gdbPort(const Child& vm) {
  std::regex listening("gdb stub listening on tcp:127\\.0\\.0\\.1:([0-9]+)");
  for (int i = 0; i < 100; ++i) {
    std::smatch found;
    std::string log = vm.output();
    if (std::regex_search(log, found, listening)) return std::stoi(found[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

std::vector<std::string> strataRun(const std::string& engine, bool wait) {
  std::vector<std::string> argv = {strataBinary(), "run", "--engine", engine, "--gdb", "tcp:127.0.0.1:0"};
  if (wait) argv.push_back("--gdb-wait");
  return argv;
}

class GdbGuest : public ::testing::TestWithParam<std::string> {};

TEST_P(GdbGuest, BreaksAtKernelSymbolStepsDetachesAndGuestBootsOn) {
  if (runShell("command -v gdb-multiarch").exitCode != 0) GTEST_SKIP() << "gdb-multiarch is not installed (scripts/setup.sh)";
  const std::string engine = GetParam();
  Child vm(strataRun(engine, true), "echo after-gdb=$((6*7))\npoweroff\n", temporaryPath("gdb-" + engine + ".log"));
  const int port = gdbPort(vm);
  ASSERT_NE(port, 0) << vm.output();
  auto gdb = runShell("timeout 180 gdb-multiarch -batch -nx -ex 'set pagination off' -ex 'file " +
                      defaultGuestFile("vmlinux") + "' -ex 'target remote 127.0.0.1:" + std::to_string(port) +
                      "' -ex 'break start_kernel' -ex 'continue' -ex 'info registers pc sp' -ex 'p/x $priv'"
                      " -ex 'x/s (char*)&linux_banner' -ex 'stepi' -ex 'info registers pc' -ex 'detach' 2>&1");
  EXPECT_TRUE(contains(gdb.output, "Breakpoint 1, 0x"));
  EXPECT_TRUE(contains(gdb.output, " in start_kernel ()"));
  // Registers: pc at the function, the stack in the kernel's mapping, S-mode.
  EXPECT_TRUE(std::regex_search(gdb.output, std::regex("pc\\s+0x[0-9a-f]+\\s+0x[0-9a-f]+ <start_kernel>\n")))
      << gdb.output;
  EXPECT_TRUE(std::regex_search(gdb.output, std::regex("sp\\s+0xffffffff8[0-9a-f]+"))) << gdb.output;
  EXPECT_TRUE(contains(gdb.output, "= 0x1\n"));
  // Memory through the guest's page tables: the kernel's banner at its virtual address.
  EXPECT_TRUE(std::regex_search(gdb.output, std::regex("<linux_banner>:\\s+\"Linux version 6\\."))) << gdb.output;
  // One instruction on: start_kernel opens with a 2- or 4-byte stack adjustment.
  EXPECT_TRUE(std::regex_search(gdb.output, std::regex("pc\\s+0x[0-9a-f]+\\s+0x[0-9a-f]+ <start_kernel\\+(2|4)>")))
      << gdb.output;
  EXPECT_TRUE(contains(gdb.output, "[Inferior 1 (Remote target) detached]"));
  ASSERT_TRUE(vm.wait(std::chrono::seconds(240))) << vm.output();
  EXPECT_EQ(vm.exitCode(), 0) << vm.output();
  EXPECT_TRUE(contains(vm.output(), "after-gdb=42"));
}

INSTANTIATE_TEST_SUITE_P(Engines, GdbGuest, ::testing::Values("interp", "jit"));

// A raw GDB remote protocol client over TCP.
class RspClient {
 public:
  explicit RspClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RspClient() { close(); }
  bool connected() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void sendRaw(const std::string& bytes) { (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void sendPacket(const std::string& payload) {
    unsigned sum = 0;
    for (unsigned char c : payload) sum += c;
    char checksum[3];
    std::snprintf(checksum, sizeof checksum, "%02x", sum & 0xff);
    sendRaw("$" + payload + "#" + checksum);
  }
  // Everything received until `pattern` matches (or `seconds` pass); consumed.
  std::string readUntil(const std::regex& pattern, int seconds = 20) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!std::regex_search(received_, pattern) && std::chrono::steady_clock::now() < end) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buffer[4096];
      ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got <= 0) break;
      received_.append(buffer, static_cast<size_t>(got));
    }
    return std::exchange(received_, {});
  }
  // The payload of the next reply packet ("<timeout>" when none came).
  std::string reply(int seconds = 20) {
    std::string text = readUntil(std::regex("\\$[^#]*#[0-9a-f]{2}"), seconds);
    std::smatch found;
    if (!std::regex_search(text, found, std::regex("\\$([^#]*)#[0-9a-f]{2}"))) return "<timeout>";
    return found[1];
  }
  std::string exchange(const std::string& payload) {
    sendPacket(payload);
    return reply();
  }

 private:
  int fd_ = -1;
  std::string received_;
};

TEST(GdbProtocol, BadPacketsInterruptsAndVanishingClientsLeaveTheVmRunning) {
  Child vm(strataRun("jit", true), "echo still-alive=$((6*7))\npoweroff\n", temporaryPath("gdb-protocol.log"));
  const int port = gdbPort(vm);
  ASSERT_NE(port, 0) << vm.output();
  {
    RspClient client(port);
    ASSERT_TRUE(client.connected());
    // Noise between packets is skipped; a wrong checksum and an oversized packet are refused with '-'.
    client.sendRaw("hello\r\n");
    client.sendRaw("$qC#00");
    EXPECT_TRUE(contains(client.readUntil(std::regex("-")), "-"));
    client.sendRaw("$" + std::string(100000, 'm') + "#00");
    EXPECT_TRUE(contains(client.readUntil(std::regex("-")), "-"));
    client.sendRaw("$?#zz");
    EXPECT_TRUE(contains(client.readUntil(std::regex("-")), "-"));
    // Well-formed packets with bad arguments get errors; unknown ones the empty reply.
    EXPECT_EQ(client.exchange("?"), "T05thread:01;");
    EXPECT_EQ(client.exchange("mzz,4"), "E22");
    EXPECT_EQ(client.exchange("m0,4"), "E14");  // no RAM at 0
    EXPECT_EQ(client.exchange("p99999"), "E45");
    EXPECT_EQ(client.exchange("Hg9"), "E22");
    EXPECT_EQ(client.exchange("Z2,80200000,0"), "E22");
    EXPECT_EQ(client.exchange("vCont;x"), "E22");
    EXPECT_EQ(client.exchange("qNoSuchThing"), "");
    EXPECT_EQ(client.exchange("qfThreadInfo"), "m1");
    // A hardware breakpoint at the kernel's entry, then Ctrl-C while it runs on.
    EXPECT_EQ(client.exchange("Z1,80200000,2"), "OK");
    client.sendPacket("vCont;c");
    EXPECT_EQ(client.reply(), "T05thread:1;");
    EXPECT_EQ(client.exchange("p20"), "0000208000000000");  // pc = 0x80200000, little-endian
    EXPECT_EQ(client.exchange("z1,80200000,2"), "OK");
    // At once: the guest boots to its shell and powers off in well under a second.
    client.sendPacket("c");
    client.sendRaw("\x03");
    EXPECT_EQ(client.reply(), "T02thread:1;");
    // Gone in the middle of a packet, with a breakpoint set: the VM must run on without it.
    EXPECT_EQ(client.exchange("Z0,80200000,2"), "OK");
    client.sendRaw("$m8020");
  }
  ASSERT_TRUE(vm.wait(std::chrono::seconds(240))) << vm.output();
  EXPECT_EQ(vm.exitCode(), 0) << vm.output();
  EXPECT_TRUE(contains(vm.output(), "still-alive=42"));
}

}  // namespace
}  // namespace strata::test
