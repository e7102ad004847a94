// `strata daemon`'s metering with real VMs: a VM that writes into its sparse
// disk is billed disk GiB-hours for the bytes the file then holds, two VMs
// pinging each other over a daemon network are billed at least the bytes the
// pings carried, and a daemon killed and started again (while a VM sends more)
// continues its records: no gap, no interval or byte counted twice.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon_process.h"

namespace strata::test {
namespace {

using nlohmann::json;

constexpr double kGib = 1024.0 * 1024.0 * 1024.0;
// One ping of -s 1000: ICMP payload + ICMP header + IPv4 header + Ethernet header.
constexpr uint64_t kPingFrameBytes = 1000 + 8 + 20 + 14;

// The VM's total over every record overlapping [from, now), as GET /usage reports it.
json usageOf(DaemonProcess& daemon, const std::string& vm, int64_t from = 0) {
  for (const auto& total : daemon.call("GET", "/usage?from=" + std::to_string(from)).second)
    if (total.value("vm", "") == vm) return total;
  return json::object();
}

// Waits until the VM's records reach past `when` (the daemon meters every second here).
bool meteredPast(DaemonProcess& daemon, const std::string& vm, int64_t when) {
  return waitFor([&] { return usageOf(daemon, vm).value("end", int64_t{0}) > when; }, std::chrono::seconds(30));
}

// What the VM's own NICs counted (its `strata run` API, not the daemon's).
json nicCounters(DaemonProcess& daemon, const std::string& vm) {
  auto reply = control::httpOverUnixSocket(daemon.dataDir() + "/vms/" + vm + "/api.sock",
                                           {"GET", "/vm/stats", "", "", std::chrono::seconds(10)});
  if (!reply || reply->status != 200) return json::object();
  return json::parse(reply->body, nullptr, false).value("nets", json::array()).at(0);
}

// User + system CPU seconds of a process.
double cpuSecondsOf(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  uint64_t ticks = 0;
  for (int index = 3; fields >> field && index <= 15; ++index)
    if (index >= 14) ticks += std::stoull(field);
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

uint64_t allocatedBytes(const std::string& path) {
  struct stat file {};
  return ::stat(path.c_str(), &file) == 0 ? static_cast<uint64_t>(file.st_blocks) * 512 : 0;
}

// The hours a total spans; contiguous records of one run bill exactly these.
double hoursOf(const json& total) { return static_cast<double>(total["end"].get<int64_t>() - total["start"].get<int64_t>()) / 3600.0; }

TEST(DaemonMetering, BillsDiskAllocationAndTrafficAndLosesNothingAcrossAKilledDaemon) {
  DaemonProcess daemon("meter");
  HostSwitchReaper reaper{daemon};
  std::string acme = daemon.newTenantToken("acme");
  ASSERT_EQ(daemon.call("POST", "/networks", {{"name", "lan"}}, acme).first, 201);
  std::string image = daemon.dataDir() + "/tenants/acme/left.raw";
  { std::ofstream create(image); }
  std::filesystem::resize_file(image, 64 << 20);  // sparse: nothing allocated yet
  ASSERT_LT(allocatedBytes(image), 1u << 20);

  auto [leftMade, left] = daemon.call("POST", "/vms", {{"name", "left"}, {"memory_mib", 256}, {"nets", {"network=lan"}},
                                                      {"disks", {{{"path", image}, {"format", "raw"}}}}}, acme);
  ASSERT_EQ(leftMade, 201) << left;
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "right"}, {"nets", {"network=lan"}}}, acme).first, 201);
  pid_t leftPid = 0;
  for (std::string name : {"left", "right"}) {
    auto [started, running] = daemon.call("POST", "/vms/" + name + "/start", nullptr, acme);
    ASSERT_EQ(started, 200) << running;
    if (name == "left") leftPid = running["pid"].get<pid_t>();
  }
  ASSERT_TRUE(consoleAnswers(daemon, "left", "ip link set eth0 up; ip addr add 10.78.0.1/24 dev eth0; echo l-$((1+1))\n",
                             "l-2"));
  ASSERT_TRUE(consoleAnswers(daemon, "right", "ip link set eth0 up; ip addr add 10.78.0.2/24 dev eth0; echo r-$((2+2))\n",
                             "r-4"));
  std::string leftConsole = daemon.dataDir() + "/vms/left/console.log";

  // 16 MiB written into the disk: the file then holds them, and every record ending after that bills exactly them.
  ASSERT_TRUE(typeOnce(daemon, "left", "dd if=/dev/urandom of=/dev/vda bs=65536 count=256 conv=fsync 2>/dev/null; "
                                       "echo written-$((6*7))\n", "written-42"))
      << readFile(leftConsole);
  auto written = static_cast<int64_t>(::time(nullptr));
  uint64_t allocated = allocatedBytes(image);
  EXPECT_GE(allocated, 16u << 20);
  EXPECT_LE(allocated, 17u << 20);
  ASSERT_TRUE(meteredPast(daemon, "left", written + 2));
  auto sinceWritten = usageOf(daemon, "left", written + 1);
  EXPECT_NEAR(sinceWritten["disk_gib_hours"].get<double>(), allocated / kGib * hoursOf(sinceWritten), 1e-12) << sinceWritten;
  EXPECT_GT(sinceWritten["disk_gib_hours"].get<double>(), 0.0) << sinceWritten;

  // 20 pings of 1042-byte frames each way: each VM billed at least that much, sent and received.
  ASSERT_TRUE(typeOnce(daemon, "left",
                       "n=0; until ping -c 1 -w 2 10.78.0.2 >/dev/null; do n=$((n+1)); [ $n -ge 30 ] && break; done; "
                       "ping -c 20 -i 0.2 -s 1000 10.78.0.2 | tail -2; echo pinged-$((5*5))\n",
                       "pinged-25"));
  ASSERT_TRUE(contains(readFile(leftConsole), "20 packets transmitted, 20 packets received")) << readFile(leftConsole);
  auto pinged = static_cast<int64_t>(::time(nullptr));
  ASSERT_TRUE(meteredPast(daemon, "left", pinged + 1));
  ASSERT_TRUE(meteredPast(daemon, "right", pinged + 1));
  for (std::string name : {"left", "right"}) {
    auto total = usageOf(daemon, name);
    EXPECT_GE(total["rx_bytes"].get<uint64_t>(), 20 * kPingFrameBytes) << name << total;
    EXPECT_GE(total["tx_bytes"].get<uint64_t>(), 20 * kPingFrameBytes) << name << total;
  }
  EXPECT_EQ(usageOf(daemon, "right")["disk_gib_hours"], 0.0) << "right has no disk";

  // Killed: the VMs run on and left sends 10 more pings the dead daemon cannot see.
  double cpuAtKill = cpuSecondsOf(leftPid);
  daemon.stop(SIGKILL);
  ASSERT_TRUE(typeOnce(daemon, "left", "ping -c 10 -i 0.2 -s 1000 10.78.0.2 | tail -2; echo again-$((7*7))\n", "again-49"));
  json beforeRestart = nicCounters(daemon, "left");
  ASSERT_GE(beforeRestart.value("tx_bytes", uint64_t{0}), 30 * kPingFrameBytes) << beforeRestart;
  daemon.start();
  auto restarted = static_cast<int64_t>(::time(nullptr));
  ASSERT_TRUE(meteredPast(daemon, "left", restarted + 1));
  auto total = usageOf(daemon, "left");
  json countersNow = nicCounters(daemon, "left");
  double cpuNow = cpuSecondsOf(leftPid);
  // No gap and no overlap: the memory given, for exactly the span the records cover.
  EXPECT_NEAR(total["memory_gib_hours"].get<double>(), 0.25 * hoursOf(total), 1e-9) << total;
  // Nothing lost (all the downtime's traffic and CPU time is in), nothing twice (never more than the VM counted).
  for (const char* counter : {"rx_bytes", "tx_bytes"}) {
    EXPECT_GE(total[counter].get<uint64_t>(), beforeRestart[counter].get<uint64_t>()) << counter << total;
    EXPECT_LE(total[counter].get<uint64_t>(), countersNow[counter].get<uint64_t>()) << counter << total;
  }
  EXPECT_GE(total["vcpu_seconds"].get<double>(), cpuAtKill - 0.01) << total;
  EXPECT_LE(total["vcpu_seconds"].get<double>(), cpuNow + 0.01) << total;

  // A tenant sees its own VMs; CSV and the table carry the same columns.
  EXPECT_EQ(daemon.call("GET", "/usage", nullptr, acme).second.size(), 2u);
  std::string cli = strataBinary() + " usage --daemon " + daemon.socket() + " --token " + acme;
  auto csv = runShell(cli + " -o csv 2>&1");
  EXPECT_TRUE(contains(csv.output, "vm,tenant,start,end,vcpu_seconds,memory_gib_hours,disk_gib_hours,rx_bytes,tx_bytes\n"
                                   "left,acme,"))
      << csv.output;
  auto table = runShell(cli + " 2>&1");
  EXPECT_TRUE(contains(table.output, "DISK_GIB_HOURS") && contains(table.output, "TX_BYTES")) << table.output;
  EXPECT_TRUE(contains(table.output, "\nleft ")) << table.output;
  for (std::string name : {"left", "right"}) EXPECT_EQ(daemon.call("POST", "/vms/" + name + "/destroy").first, 200);
}

}  // namespace
}  // namespace strata::test
