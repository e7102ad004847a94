// Real guests on a strata switch: a `strata switch` process and three `strata
// run` processes (the default guest), each NIC attached over the switch's UNIX
// socket. Two VMs on VLAN 10 ping each other; a third on VLAN 20 cannot reach
// them and receives nothing of theirs; a flow rule dropping one VM's ICMP to
// one address stops that ping while the other, and TCP to it, still work; the same
// for a rule ovs-ofctl adds over OpenFlow 1.3; VMs that die take only their own ports down;
// a VM (sandboxed, the default) that reboots keeps its port and reaches its peer again.
// Two switch processes joined by VXLAN carry traffic between VMs on different switches.
// With offloads: 4 MiB of TCP between two VMs arrive intact in 64 KiB segments, and a VM
// reaches the host through the switch's TAP port.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "child_process.h"
#include "guest_runner.h"


namespace strata::test {
namespace {

std::string switchCommand(const std::string& args) { return strataBinary() + " switch " + args + " 2>&1"; }

// Waits (at most 10 s) for a switch process to create its control socket.
bool switchIsUp(const std::string& controlSocket) {
  for (int i = 0; i < 100 && ::access(controlSocket.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return ::access(controlSocket.c_str(), F_OK) == 0;
}

// A line the guest prints, "MARK=name", written so the console's echo of the command does not contain it.
std::string mark(const std::string& name) { return "echo MARK\"\"=" + name + "\n"; }

// The guest's output from its "MARK=name" line up to the next mark.
std::string section(const std::string& output, const std::string& name) {
  std::string begin = "MARK=" + name + "\r\n";
  size_t at = output.find(begin);
  if (at == std::string::npos) return "";
  size_t end = output.find("MARK=", at + begin.size());
  return output.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// Guest script: bring eth0 up with the given addresses, then the test's commands.
std::string guestScript(const std::vector<std::string>& addresses, const std::string& commands) {
  std::string script = "ip link set eth0 up\n";
  for (const auto& address : addresses) script += "ip addr add " + address + "/24 dev eth0\n";
  return script + commands;
}

// Pings until the peer answers once (both VMs boot at their own pace), at most ~3 minutes.
std::string waitFor(const std::string& ip) {
  return "n=0; until ping -c 1 -w 2 " + ip + " >/dev/null 2>&1; do n=$((n+1)); [ $n -ge 90 ] && break; done\n";
}

TEST(Switch, VlansIsolateVmsAndAFlowRuleDropsOneVmsIcmp) {
  std::string runDir = temporaryPath("switch-run");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string name = "it" + std::to_string(::getpid());
  Child sw({strataBinary(), "switch", name, "--openflow", "ptcp:0"}, "", temporaryPath("switch.log"));
  ASSERT_TRUE(sw.running());
  std::string openFlow = openFlowTarget(sw);
  ASSERT_FALSE(openFlow.empty()) << sw.output();
  std::string controlSocket = runDir + "/switch-" + name + ".ctl";
  ASSERT_TRUE(switchIsUp(controlSocket)) << sw.output();

  // One VM's ICMP to one of the other's addresses is dropped; everything else switches normally.
  auto added = runShell(switchCommand("flow add " + name +
                                      " priority=100,icmp,nw_src=10.10.0.1,nw_dst=10.10.0.22,actions=drop"));
  ASSERT_EQ(added.exitCode, 0) << added.output;
  // And one to a third address of B's, added by a controller (Open vSwitch's ovs-ofctl over OpenFlow 1.3).
  auto ofctl = [&](const std::string& command, const std::string& arguments = "") {
    return runShell("ovs-ofctl -O OpenFlow13 " + command + " " + openFlow + " " + arguments + " 2>&1");
  };
  auto addedByOpenFlow = ofctl("add-flow", "\"priority=100,icmp,nw_src=10.10.0.1,nw_dst=10.10.0.23,actions=drop\"");
  ASSERT_EQ(addedByOpenFlow.exitCode, 0) << addedByOpenFlow.output;

  std::string a = guestScript({"10.10.0.1"}, waitFor("10.10.0.2") + mark("to-b") + "ping -c 3 -w 10 10.10.0.2\n" +
                                                 mark("to-b-dropped") + "ping -c 3 -w 6 10.10.0.22\n" +
                                                 mark("to-b-openflow-dropped") + "ping -c 3 -w 6 10.10.0.23\n" +
                                                 mark("to-c") + "ping -c 2 -w 4 10.10.0.3\n" +
                                                 "echo strata-tcp-payload | nc -w 5 10.10.0.22 5000\n" + mark("end") +
                                                 "sleep 15\npoweroff\n");
  std::string b = guestScript({"10.10.0.2", "10.10.0.22", "10.10.0.23"},
                              waitFor("10.10.0.1") + mark("to-a") + "ping -c 3 -w 10 10.10.0.1\n" + mark("tcp") +
                                  "nc -l -p 5000 </dev/null\n" + mark("end") +
                                  "sleep 1000\n");
  std::string c = guestScript({"10.10.0.3"}, mark("c-up") + "sleep 1000\n");
  auto vm = [&](const std::string& net, const std::string& script, const std::string& log) {
    return std::make_unique<Child>(std::vector<std::string>{strataBinary(), "run", "--net", net}, script,
                                   temporaryPath(log));
  };
  auto vmA = vm("switch=" + name + ",vlan=10,mac=52:54:00:00:10:01", a, "vm-a.log");
  auto vmB = vm("switch=" + name + ",vlan=10,mac=52:54:00:00:10:02", b, "vm-b.log");
  auto vmC = vm("switch=" + name + ",vlan=20,mac=52:54:00:00:20:03", c, "vm-c.log");

  ASSERT_TRUE(vmA->wait(std::chrono::seconds(480))) << "VM A did not finish:\n" << vmA->output();
  std::string outA = vmA->output();
  EXPECT_EQ(vmA->exitCode(), 0) << outA;
  EXPECT_TRUE(contains(section(outA, "to-b"), "3 packets transmitted, 3 packets received"));
  EXPECT_TRUE(contains(section(outA, "to-b-dropped"), "3 packets transmitted, 0 packets received"));
  EXPECT_TRUE(contains(section(outA, "to-b-openflow-dropped"), "3 packets transmitted, 0 packets received"));
  // VLAN 20 is another network: ARP for C goes unanswered (busybox may end with "unreachable").
  std::string toC = section(outA, "to-c");
  EXPECT_FALSE(toC.empty()) << outA;
  EXPECT_EQ(toC.find("bytes from"), std::string::npos) << toC;
  EXPECT_EQ(toC.find(" 1 packets received"), std::string::npos) << toC;
  EXPECT_EQ(toC.find(" 2 packets received"), std::string::npos) << toC;
  EXPECT_TRUE(contains(section(vmB->output(), "to-a"), "3 packets transmitted, 3 packets received"));
  // The ICMP rule leaves TCP alone: A's connection to the same address got through.
  EXPECT_TRUE(contains(section(vmB->output(), "tcp"), "strata-tcp-payload"));
  EXPECT_TRUE(contains(vmC->output(), "MARK=c-up")) << "VM C was not up while A tried to reach it";

  auto flows = runShell(switchCommand("flow list " + name + " --json"));
  EXPECT_EQ(flows.exitCode, 0) << flows.output;
  EXPECT_TRUE(contains(flows.output, "\"packets\":3")) << "the drop rule did not see A's three pings";
  auto dumped = ofctl("dump-flows");
  EXPECT_TRUE(std::regex_search(dumped.output, std::regex("n_packets=3, .*priority=100,icmp,nw_src=10\\.10\\.0\\.1,"
                                                               "nw_dst=10\\.10\\.0\\.23 actions=drop")))
      << "the OpenFlow rule did not see A's three pings:\n" << dumped.output;
  // The same CLI deletes them (both, whoever added them: one table).
  auto deleted = runShell(switchCommand("flow del " + name + " all"));
  EXPECT_EQ(deleted.exitCode, 0) << deleted.output;
  EXPECT_TRUE(contains(runShell(switchCommand("flow list " + name + " --json")).output, "{\"flows\":[]}"));
  auto ports = runShell(switchCommand("port list " + name + " --json"));
  // VM C (VLAN 20) must not have been sent a single frame of VLAN 10's traffic.
  size_t cAt = ports.output.find("\"mac\":\"52:54:00:00:20:03\"");
  ASSERT_NE(cAt, std::string::npos) << ports.output;
  EXPECT_TRUE(contains(ports.output.substr(cAt, ports.output.find('}', cAt) - cAt), "\"tx_packets\":0,"));

  // VM A powered off and B dies: only their ports go; C's stays, and the switch still answers.
  vmB->kill(SIGKILL);
  std::string remaining;
  for (int i = 0; i < 50; ++i) {
    remaining = runShell(switchCommand("port list " + name + " --json")).output;
    if (remaining.find("52:54:00:00:10:0") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(remaining.find("52:54:00:00:10:0"), std::string::npos) << remaining;
  EXPECT_TRUE(contains(remaining, "52:54:00:00:20:03"));
  vmC->kill(SIGKILL);
  sw.kill(SIGTERM);
  EXPECT_EQ(sw.exitCode(), 0) << sw.output();
  EXPECT_NE(::access(controlSocket.c_str(), F_OK), 0) << "the switch left its control socket behind";
}

// The switch port is opened once per VM process: after the guest reboots (its
// sandbox forbids connecting again) the next boot's NIC uses the same port.
TEST(Switch, VmReachesItsPeerAgainAfterTheGuestReboots) {
  std::string runDir = temporaryPath("switch-reboot");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string name = "rb" + std::to_string(::getpid());
  Child sw({strataBinary(), "switch", name}, "", temporaryPath("switch-reboot.log"));
  std::string controlSocket = runDir + "/switch-" + name + ".ctl";
  ASSERT_TRUE(switchIsUp(controlSocket)) << sw.output();

  Child peer({strataBinary(), "run", "--net", "switch=" + name + ",mac=52:54:00:00:13:02"},
             guestScript({"10.10.3.2"}, "sleep 1000\n"), temporaryPath("vm-reboot-peer.log"));
  // The first boot reaches the peer, leaves /autorun (the second boot's script) on its root disk and reboots.
  std::string reachPeer = "ip link set eth0 up\nip addr add 10.10.3.1/24 dev eth0\n" + waitFor("10.10.3.2") +
                          "echo MARK\"\"=$1\nping -c 3 -w 10 10.10.3.2\n";
  std::string firstBoot = "cat > /reach <<'EOF'\n" + reachPeer + "EOF\nchmod +x /reach\n" +
                          "printf '#!/bin/sh\\nsh /reach second-boot\\nexec /sbin/strata-shutdown poweroff\\n' > /autorun\n"
                          "chmod +x /autorun\nsh /reach first-boot\nsync\nreboot\n";
  std::string disk = copyOfRootDisk("switch-reboot");
  Child vm({strataBinary(), "run", "--disk", disk, "--append", "console=ttyS0 root=/dev/vda", "--net",
            "switch=" + name + ",mac=52:54:00:00:13:01"},
           firstBoot, temporaryPath("vm-reboot.log"));
  ASSERT_TRUE(vm.wait(std::chrono::seconds(480))) << "the VM did not finish:\n" << vm.output();
  std::string out = vm.output();
  EXPECT_EQ(vm.exitCode(), 0) << out;
  EXPECT_TRUE(contains(section(out, "first-boot"), "3 packets transmitted, 3 packets received")) << out;
  EXPECT_TRUE(contains(section(out, "second-boot"), "3 packets transmitted, 3 packets received")) << out;
  peer.kill(SIGKILL);
  sw.kill(SIGTERM);
}

// A VM on a trunk port talks VLAN 10 through its own 802.1Q interface (eth0.10)
// with a VM on an access port: the switch pops the guest's tags one way and
// pushes them the other.
TEST(Switch, TrunkPortCarriesTheGuestsTaggedFrames) {
  std::string runDir = temporaryPath("switch-trunk");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string name = "tr" + std::to_string(::getpid());
  Child sw({strataBinary(), "switch", name}, "", temporaryPath("switch-trunk.log"));
  std::string controlSocket = runDir + "/switch-" + name + ".ctl";
  ASSERT_TRUE(switchIsUp(controlSocket)) << sw.output();

  std::string trunk = "ip link set eth0 up\nvconfig add eth0 10\nip addr add 10.30.0.1/24 dev eth0.10\n"
                      "ip link set eth0.10 up\n" + waitFor("10.30.0.2") + mark("to-access") +
                      "ping -c 3 -w 10 10.30.0.2\n" + mark("end") + "sleep 5\npoweroff\n";
  std::string access = guestScript({"10.30.0.2"}, mark("up") + "sleep 1000\n");
  Child vmTrunk({strataBinary(), "run", "--net", "switch=" + name + ",trunk=10,20,mac=52:54:00:00:30:01"}, trunk,
                temporaryPath("vm-trunk.log"));
  Child vmAccess({strataBinary(), "run", "--net", "switch=" + name + ",vlan=10,mac=52:54:00:00:30:02"}, access,
                 temporaryPath("vm-access.log"));
  ASSERT_TRUE(vmTrunk.wait(std::chrono::seconds(480))) << vmTrunk.output();
  EXPECT_TRUE(contains(section(vmTrunk.output(), "to-access"), "3 packets transmitted, 3 packets received"));
  auto ports = runShell(switchCommand("port list " + name + " --json"));
  EXPECT_TRUE(contains(ports.output, "\"vlans\":\"vlan=10\",\"mac\":\"52:54:00:00:30:02\""));
  EXPECT_TRUE(contains(ports.output, "\"bad_vlan_tag\":0")) << "the guest's 802.1Q tags were refused";
  vmAccess.kill(SIGKILL);
  sw.kill(SIGTERM);
}

// Two network namespaces joined by a veth pair: in one, a Linux kernel `vxlan`
// device (VNI 4242) with 10.213.97.1; in the other, a strata switch whose VXLAN
// port tunnels to it and whose TAP port holds 10.213.97.2. The kernel side ARPs
// and sends UDP across: frames cross strata's VXLAN encapsulation both ways.
class VxlanNamespaces {
 public:
  VxlanNamespaces() : kernelSide_("strata-vxk-" + std::to_string(::getpid())),
                      switchSide_("strata-vxs-" + std::to_string(::getpid())) {
    auto made = runShell("ip netns add " + kernelSide_ + " && ip netns add " + switchSide_ +
                         " && ip link add vxk netns " + kernelSide_ + " type veth peer name vxs netns " + switchSide_ +
                         " && ip -n " + kernelSide_ + " addr add 10.213.98.1/24 dev vxk && ip -n " + kernelSide_ +
                         " link set vxk up && ip -n " + switchSide_ + " addr add 10.213.98.2/24 dev vxs && ip -n " +
                         switchSide_ + " link set vxs up && ip -n " + kernelSide_ +
                         " link add vx0 type vxlan id 4242 remote 10.213.98.2 local 10.213.98.1 dstport 4789 dev vxk"
                         " && ip -n " + kernelSide_ + " addr add 10.213.97.1/24 dev vx0 && ip -n " + kernelSide_ +
                         " link set vx0 up 2>&1");
    ok_ = made.exitCode == 0;
    why_ = made.output;
  }
  ~VxlanNamespaces() {
    runShell("ip netns delete " + kernelSide_ + " 2>/dev/null; ip netns delete " + switchSide_ + " 2>/dev/null");
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  const std::string& kernelSide() const { return kernelSide_; }
  const std::string& switchSide() const { return switchSide_; }

 private:
  std::string kernelSide_, switchSide_;
  bool ok_ = false;
  std::string why_;
};

// Two switch processes joined by a VXLAN tunnel (over loopback, 127.0.0.1 and
// 127.0.0.2) are one network: a VM on each pings the other and sends it TCP.
TEST(Switch, VmsOnTwoSwitchesJoinedByVxlanReachEachOther) {
  std::string runDir = temporaryPath("switch-vxlan2");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string left = "vl" + std::to_string(::getpid()), right = "vr" + std::to_string(::getpid());
  std::string udpPort = std::to_string(20000 + ::getpid() % 20000);  // apart from other tests' tunnels
  auto tunnel = [&](const std::string& local, const std::string& remote) {
    return "tunnel,remote=" + remote + ":" + udpPort + ",vni=4243,local=" + local + ":" + udpPort;
  };
  Child swLeft({strataBinary(), "switch", "--vxlan", tunnel("127.0.0.1", "127.0.0.2"), left}, "",
               temporaryPath("switch-vxlan-left.log"));
  Child swRight({strataBinary(), "switch", "--vxlan", tunnel("127.0.0.2", "127.0.0.1"), right}, "",
                temporaryPath("switch-vxlan-right.log"));
  ASSERT_TRUE(switchIsUp(runDir + "/switch-" + left + ".ctl")) << swLeft.output();
  ASSERT_TRUE(switchIsUp(runDir + "/switch-" + right + ".ctl")) << swRight.output();

  std::string a = guestScript({"10.10.4.1"}, waitFor("10.10.4.2") + mark("ping") + "ping -c 3 -w 10 10.10.4.2\n" +
                                                 "echo across-the-tunnel | nc -w 5 10.10.4.2 5003\n" + mark("end") +
                                                 "poweroff\n");
  std::string b = guestScript({"10.10.4.2"}, mark("tcp") + "nc -l -p 5003 </dev/null\n" + mark("end") + "sleep 1000\n");
  Child vmB({strataBinary(), "run", "--net", "switch=" + right + ",mac=52:54:00:00:14:02"}, b,
            temporaryPath("vm-vxlan-b.log"));
  Child vmA({strataBinary(), "run", "--net", "switch=" + left + ",mac=52:54:00:00:14:01"}, a,
            temporaryPath("vm-vxlan-a.log"));
  ASSERT_TRUE(vmA.wait(std::chrono::seconds(480))) << "VM A did not finish:\n" << vmA.output();
  EXPECT_TRUE(contains(section(vmA.output(), "ping"), "3 packets transmitted, 3 packets received")) << vmA.output();
  EXPECT_TRUE(contains(section(vmB.output(), "tcp"), "across-the-tunnel")) << vmB.output();
  auto ports = runShell(switchCommand("port list " + right + " --json"));
  EXPECT_TRUE(contains(ports.output, "\"name\":\"tunnel\",\"kind\":\"vxlan\"")) << ports.output;
  vmB.kill(SIGKILL);
  swLeft.kill(SIGTERM);
  swRight.kill(SIGTERM);
}

TEST(Switch, ExchangesFramesWithAKernelVxlanDevice) {
  VxlanNamespaces ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create network namespaces with veth and vxlan devices here: " << ns.why();
  std::string runDir = temporaryPath("switch-vxlan");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string name = "vx" + std::to_string(::getpid());
  Child sw({"ip", "netns", "exec", ns.switchSide(), strataBinary(), "switch", "--vxlan",
            "tunnel,remote=10.213.98.1,vni=4242,local=10.213.98.2", "--tap", "stap0", name},  // name after options
           "", temporaryPath("switch-vxlan.log"));
  std::string controlSocket = runDir + "/switch-" + name + ".ctl";
  ASSERT_TRUE(switchIsUp(controlSocket)) << sw.output();
  auto tapUp = runShell("ip -n " + ns.switchSide() + " addr add 10.213.97.2/24 dev stap0 && ip -n " + ns.switchSide() +
                        " link set stap0 up 2>&1");
  ASSERT_EQ(tapUp.exitCode, 0) << tapUp.output;

  // A UDP listener behind the TAP port; the kernel side first ARPs for it (both directions through the tunnel).
  Child listener({"ip", "netns", "exec", ns.switchSide(), "python3", "-c",
                  "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                  "s.bind(('10.213.97.2', 9999)); print('bound', flush=True); s.settimeout(20); "
                  "print(s.recv(100).decode(), flush=True)"},
                 "", temporaryPath("vxlan-listener.log"));
  for (int i = 0; i < 100 && listener.output().find("bound") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(contains(listener.output(), "bound"));
  // SO_NO_CHECK: the kernel would leave the inner UDP checksum to veth "offload", and the encapsulated
  // frame reaches strata's socket unfinished (a real NIC would fill it in); no checksum is valid IPv4.
  auto sent = runShell("ip netns exec " + ns.kernelSide() +
                       " python3 -c \"import socket, time\n"
                       "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                       "s.setsockopt(socket.SOL_SOCKET, 11, 1)\n"
                       "for i in range(12): s.sendto(b'strata-vxlan-ok', ('10.213.97.2', 9999)); time.sleep(0.5)\" 2>&1");
  EXPECT_EQ(sent.exitCode, 0) << sent.output;
  ASSERT_TRUE(listener.wait(std::chrono::seconds(25)));
  EXPECT_TRUE(contains(listener.output(), "strata-vxlan-ok"));
  auto neighbour = runShell("ip -n " + ns.kernelSide() + " neigh show 10.213.97.2 2>&1");
  EXPECT_TRUE(contains(neighbour.output, "lladdr")) << "the kernel never learned the TAP side's MAC through VXLAN";
  auto ports = runShell(switchCommand("port list " + name + " --json"));
  EXPECT_TRUE(contains(ports.output, "\"name\":\"tunnel\",\"kind\":\"vxlan\""));
  EXPECT_EQ(ports.output.find("\"kind\":\"vxlan\",\"vlans\":\"vlan=1\",\"mac\":\"-\",\"rx_packets\":0,"),
            std::string::npos)
      << "nothing arrived through the VXLAN port: " << ports.output;
  sw.kill(SIGTERM);
}

TEST(Switch, RunRefusesAMissingSwitchOrBadNetOptions) {
  std::string runDir = temporaryPath("switch-none");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  auto missing = runStrata({"--net", "switch=nosuchswitch,vlan=10"}, "");
  EXPECT_NE(missing.exitCode, 0);
  EXPECT_TRUE(contains(missing.output, "is `strata switch nosuchswitch` running?"));
  for (const char* bad : {"switch=x,vlan=5000", "switch=../x", "switch=x,mac=01:00:5e:00:00:01", "switch=x,trunk=3-1"}) {
    auto run = runStrata({"--net", bad}, "");
    EXPECT_EQ(run.exitCode, 2) << bad << ": " << run.output;
    EXPECT_TRUE(contains(run.output, std::string("--net ") + bad));
  }
}


// ------------------------------------------------------------ offloads

// The switch's port list entry for mac (rx/tx counters), or null.
nlohmann::json portWithMac(const std::string& switchName, const std::string& mac) {
  auto listed = runShell(switchCommand("port list " + switchName + " --json"));
  auto list = nlohmann::json::parse(listed.output, nullptr, false);
  if (list.is_object() && list["ports"].is_array())
    for (const auto& port : list["ports"])
      if (port.value("mac", "") == mac) return port;
  ADD_FAILURE() << "no port with MAC " << mac << " in: " << listed.output;
  return nullptr;
}

// "FEAT=<64 digits>": the virtio-net features the guest's driver negotiated, bit 0 first.
std::string negotiatedFeatures() { return "echo FEAT\"\"=$(cat /sys/class/net/eth0/device/features)\n"; }
::testing::AssertionResult hasOffloadFeatures(const std::string& output) {
  size_t at = output.find("FEAT=");
  if (at == std::string::npos) return ::testing::AssertionFailure() << "no FEAT= line in:\n" << output;
  std::string bits = output.substr(at + 5, 64);
  // CSUM, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, HOST_TSO4, HOST_TSO6, MRG_RXBUF.
  for (unsigned bit : {0u, 1u, 7u, 8u, 11u, 12u, 15u})
    if (bits.size() <= bit || bits[bit] != '1')
      return ::testing::AssertionFailure() << "feature bit " << bit << " not negotiated: " << bits;
  return ::testing::AssertionSuccess();
}

// The value after "KEY=" on its own line of output ("" if absent).
std::string valueOf(const std::string& output, const std::string& key) {
  size_t at = output.find("\n" + key + "=");
  if (at == std::string::npos) return "";
  at += key.size() + 2;
  return output.substr(at, output.find_first_of("\r\n ", at) - at);
}

// Two VMs on a switch move 4 MiB over TCP with checksum offload, TSO and merged
// RX buffers negotiated: the data arrives intact and 64 KiB segments crossed the
// switch as single messages (more bytes than a 1514-byte frame per message).
TEST(SwitchOffload, TcpBetweenTwoVmsArrivesIntactWithTsoAndChecksumOffload) {
  std::string runDir = temporaryPath("switch-offload");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string name = "of" + std::to_string(::getpid());
  Child sw({strataBinary(), "switch", name}, "", temporaryPath("switch-offload.log"));
  std::string controlSocket = runDir + "/switch-" + name + ".ctl";
  ASSERT_TRUE(switchIsUp(controlSocket)) << sw.output();

  std::string sender = guestScript({"10.10.1.1"}, negotiatedFeatures() + waitFor("10.10.1.2") +
                                                      "dd if=/dev/urandom of=/tmp/data bs=1024 count=4096 2>/dev/null\n"
                                                      "echo SENT\"\"=$(sha256sum < /tmp/data | cut -c1-64)\n"
                                                      "nc -w 5 10.10.1.2 5001 < /tmp/data\n" +
                                                      mark("end") + "sleep 1000\n");
  // </dev/null: nc would otherwise read (and send) the rest of this script from the console.
  std::string receiver = guestScript({"10.10.1.2"}, negotiatedFeatures() +
                                                        "nc -l -p 5001 </dev/null > /tmp/data\n"
                                                        "echo RECEIVED\"\"=$(sha256sum < /tmp/data | cut -c1-64)\n"
                                                        "sleep 1000\n");
  Child vmB({strataBinary(), "run", "--net", "switch=" + name + ",vlan=10,mac=52:54:00:00:11:02"}, receiver,
            temporaryPath("vm-offload-b.log"));
  Child vmA({strataBinary(), "run", "--net", "switch=" + name + ",vlan=10,mac=52:54:00:00:11:01"}, sender,
            temporaryPath("vm-offload-a.log"));
  // The sender stays up (its port and counters with it) until the receiver has hashed the data.
  for (int i = 0; i < 4800 && valueOf(vmB.output(), "RECEIVED").empty() && vmA.running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string sent = valueOf(vmA.output(), "SENT"), received = valueOf(vmB.output(), "RECEIVED");
  ASSERT_EQ(sent.size(), 64u) << vmA.output();
  EXPECT_EQ(received, sent) << vmB.output();
  EXPECT_TRUE(hasOffloadFeatures(vmA.output()));
  EXPECT_TRUE(hasOffloadFeatures(vmB.output()));

  auto portA = portWithMac(name, "52:54:00:00:11:01");
  ASSERT_TRUE(portA.is_object());
  uint64_t packets = portA.value("rx_packets", uint64_t{0}), bytes = portA.value("rx_bytes", uint64_t{0});
  ASSERT_GT(packets, 0u);
  EXPECT_GT(bytes, 4u << 20);
  EXPECT_GT(bytes / packets, 1514u) << "no segment larger than an MTU frame crossed the switch: " << portA.dump();
  vmA.kill(SIGKILL);
  vmB.kill(SIGKILL);
  sw.kill(SIGTERM);
}

// A switch with a TAP port in a network namespace: a VM on the switch pings the
// host's address on the TAP interface and sends it 2 MiB over TCP, whose
// TSO/checksum offloads reach the host stack through the vnet header (the host
// kernel verifies what strata hands it).
TEST(SwitchOffload, VmReachesTheHostThroughTheSwitchsTapPort) {
  std::string ns = "strata-tapsw-" + std::to_string(::getpid());
  auto made = runShell("ip netns add " + ns + " && ip -n " + ns + " link set lo up 2>&1");
  if (made.exitCode != 0) GTEST_SKIP() << "cannot create a network namespace for a TAP interface here: " << made.output;
  struct Cleanup {
    std::string ns;
    ~Cleanup() { runShell("ip netns delete " + ns + " 2>/dev/null"); }
  } cleanup{ns};
  std::string runDir = temporaryPath("switch-tap");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  std::string name = "tp" + std::to_string(::getpid());
  Child sw({"ip", "netns", "exec", ns, strataBinary(), "switch", "--tap", "stap1", name}, "",
           temporaryPath("switch-tap.log"));
  std::string controlSocket = runDir + "/switch-" + name + ".ctl";
  if (!switchIsUp(controlSocket) && contains(sw.output(), "TUNSETIFF"))
    GTEST_SKIP() << "cannot create a TAP interface here: " << sw.output();
  ASSERT_EQ(::access(controlSocket.c_str(), F_OK), 0) << sw.output();
  auto up = runShell("ip -n " + ns + " addr add 10.77.1.1/24 dev stap1 && ip -n " + ns + " link set stap1 up 2>&1");
  ASSERT_EQ(up.exitCode, 0) << up.output;

  Child host({"ip", "netns", "exec", ns, "python3", "-c",
              "import hashlib, socket\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind(('10.77.1.1', 5002)); s.listen(1); print('listening', flush=True); s.settimeout(400)\n"
              "c, _ = s.accept(); h = hashlib.sha256(); n = 0\n"
              "while True:\n"
              "    b = c.recv(65536)\n"
              "    if not b: break\n"
              "    h.update(b); n += len(b)\n"
              "print('\\nHOST=' + h.hexdigest(), n, flush=True)\n"},
             "", temporaryPath("tap-host.log"));
  for (int i = 0; i < 100 && host.output().find("listening") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(contains(host.output(), "listening"));

  std::string script = guestScript({"10.77.1.2"}, waitFor("10.77.1.1") + mark("ping") + "ping -c 3 -w 10 10.77.1.1\n" +
                                                      "dd if=/dev/urandom of=/tmp/data bs=1024 count=2048 2>/dev/null\n"
                                                      "echo SENT\"\"=$(sha256sum < /tmp/data | cut -c1-64)\n"
                                                      "nc -w 5 10.77.1.1 5002 < /tmp/data\n" +
                                                      mark("end") + "poweroff\n");
  Child vm({strataBinary(), "run", "--net", "switch=" + name + ",mac=52:54:00:00:12:01"}, script,
           temporaryPath("vm-tap.log"));
  ASSERT_TRUE(vm.wait(std::chrono::seconds(480))) << "the VM did not finish:\n" << vm.output();
  EXPECT_TRUE(contains(section(vm.output(), "ping"), "3 packets transmitted, 3 packets received"));
  ASSERT_TRUE(host.wait(std::chrono::seconds(30))) << host.output();
  std::string sent = valueOf(vm.output(), "SENT");
  EXPECT_EQ(sent.size(), 64u) << vm.output();
  EXPECT_EQ(valueOf(host.output(), "HOST"), sent) << host.output();
  EXPECT_TRUE(contains(host.output(), " 2097152")) << "the host did not get all 2 MiB";
  sw.kill(SIGTERM);
}

}  // namespace
}  // namespace strata::test
