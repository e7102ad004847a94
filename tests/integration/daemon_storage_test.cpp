// `strata daemon`'s pools, volumes and networks with real components: a pool
// on two files, a thin volume a daemon VM (the default guest) writes and a
// second VM process reads back; two VMs on one daemon network ping each other
// through the host switch the daemon runs; tenants see only their own (404),
// quotas refuse (403), and bad requests get 4xx JSON errors.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon_process.h"

namespace strata::test {
namespace {

using nlohmann::json;

// A sparse file of `mib` MiB: a PV.
std::string sparseFile(const std::string& path, uint64_t mib) {
  { std::ofstream create(path); }
  std::filesystem::resize_file(path, mib << 20);
  return path;
}

TEST(DaemonVolumes, AThinVolumeKeepsWhatOneVmWroteForTheNextAndStaysTheTenantsOwn) {
  DaemonProcess daemon("volumes");
  std::string pvs = daemon.dataDir() + "-pvs";
  std::filesystem::remove_all(pvs);
  std::filesystem::create_directories(pvs);
  std::string pv1 = sparseFile(pvs + "/pv1.img", 256), pv2 = sparseFile(pvs + "/pv2.img", 256);
  std::string acme = daemon.newTenantToken("acme"), rival = daemon.newTenantToken("rival");

  // Pools are the admin's: tenants may not define them, and bad PVs are refused by name.
  expectRefused(daemon, "POST", "/pools", {{"name", "fast"}, {"pvs", {pv1}}}, acme, 403, "admin");
  expectRefused(daemon, "POST", "/pools", {{"name", "fast"}, {"pvs", {"pv1.img"}}}, "", 400, "absolute path");
  expectRefused(daemon, "POST", "/pools", {{"name", "fast"}, {"pvs", {pvs + "/none.img"}}}, "", 400, "does not exist");
  expectRefused(daemon, "POST", "/pools", {{"name", "fast"}, {"pvs", {pvs}}}, "", 400, "neither a regular file");
  expectRefused(daemon, "POST", "/pools", {{"name", "../fast"}, {"pvs", {pv1}}}, "", 400, "name:");
  expectRefused(daemon, "POST", "/pools", {{"name", "fast"}, {"pvs", {pv1, pv1}}}, "", 400, "named twice");
  auto [defined, pool] = daemon.call("POST", "/pools", {{"name", "fast"}, {"pvs", {pv1, pv2}}, {"thin_mib", 256}});
  ASSERT_EQ(defined, 201) << pool << readFile(daemon.dataDir() + ".log");
  expectRefused(daemon, "POST", "/pools", {{"name", "again"}, {"pvs", {pv1}}}, "", 409, "already a physical volume");
  auto [shown, info] = daemon.call("GET", "/pools/fast", nullptr, acme);
  ASSERT_EQ(shown, 200) << info;
  EXPECT_GT(info["free_mib"].get<uint64_t>(), 100u) << info;
  EXPECT_FALSE(info.contains("pvs")) << "a tenant sees the host's paths";

  // A thin volume of 1 GiB (more than the PVs hold: thin) within acme's 2 GiB.
  ASSERT_EQ(daemon.call("PUT", "/tenants/acme/quota", {{"disk_gib", 2}}).first, 200);
  expectRefused(daemon, "POST", "/volumes", {{"name", "data"}, {"pool", "slow"}, {"size_mib", 1024}}, acme, 404, "no pool slow");
  expectRefused(daemon, "POST", "/volumes", {{"name", "../data"}, {"pool", "fast"}, {"size_mib", 1024}}, acme, 400, "name:");
  expectRefused(daemon, "POST", "/volumes", {{"name", "data"}, {"pool", "fast"}, {"size_mib", 0}}, acme, 400, "size_mib");
  expectRefused(daemon, "POST", "/volumes", {{"name", "data"}, {"pool", "fast"}, {"size_mib", uint64_t{1} << 40}}, acme,
                400, "size_mib");
  expectRefused(daemon, "POST", "/volumes", {{"name", "data"}, {"pool", "fast"}, {"size_mib", 64}, {"type", "thin-pool"}},
                acme, 400, "type:");
  expectRefused(daemon, "POST", "/volumes", {{"name", "data"}, {"pool", "fast"}, {"size_mib", 64}, {"colour", 1}}, acme,
                400, "unknown field");
  expectRefused(daemon, "POST", "/volumes", {{"name", "data"}, {"pool", "fast"}, {"size_mib", 64}, {"tenant", "rival"}},
                acme, 403, "only for tenant acme");
  // A linear volume larger than the PVs: the volume manager's refusal, and nothing is left counted.
  expectRefused(daemon, "POST", "/volumes", {{"name", "huge"}, {"pool", "fast"}, {"size_mib", 2000}, {"type", "linear"}},
                "", 409, "");
  auto [created, volume] = daemon.call("POST", "/volumes", {{"name", "data"}, {"pool", "fast"}, {"size_mib", 1024}}, acme);
  ASSERT_EQ(created, 201) << volume;
  EXPECT_EQ(volume["type"], "thin");
  expectRefused(daemon, "POST", "/volumes", {{"name", "more"}, {"pool", "fast"}, {"size_mib", 2048}}, acme, 403,
                "quota exceeded: disk_gib");
  expectRefused(daemon, "POST", "/volumes/data/resize", {{"size_mib", 4096}}, acme, 403, "quota exceeded: disk_gib");
  expectRefused(daemon, "POST", "/volumes/data/resize", {{"size_mib", 512}}, acme, 400, "only grow");
  EXPECT_EQ(daemon.call("GET", "/tenants/acme", nullptr, acme).second["used"]["disk_gib"], 1);

  // The rival tenant: not in its list, 404 by name, and not usable as its VM's disk.
  EXPECT_EQ(daemon.call("GET", "/volumes", nullptr, rival).second, json::array());
  for (auto [method, path] : {std::pair{"GET", "/volumes/data"}, std::pair{"DELETE", "/volumes/data"},
                              std::pair{"POST", "/volumes/data/snapshot"}, std::pair{"POST", "/volumes/data/resize"}})
    expectRefused(daemon, method, path, {{"name", "mine"}}, rival, 404, "no volume data");
  expectRefused(daemon, "POST", "/vms", {{"name", "thief"}, {"disks", {{{"volume", "data"}}}}}, rival, 404, "no volume data");

  // acme's VM boots the default guest with the volume as /dev/vda and writes to it.
  auto [vmDefined, vm] = daemon.call("POST", "/vms", {{"name", "writer"}, {"disks", {{{"volume", "data"}}}}}, acme);
  ASSERT_EQ(vmDefined, 201) << vm;
  EXPECT_EQ(vm["disks"][0]["path"], "pool:fast/data");
  auto [started, running] = daemon.call("POST", "/vms/writer/start", nullptr, acme);
  ASSERT_EQ(started, 200) << running;
  ASSERT_TRUE(consoleAnswers(daemon, "writer", "echo up-$((20+1))\n", "up-21")) << readFile(running["console"]);
  ASSERT_TRUE(typeOnce(daemon, "writer",
                       "echo strata-vol-$((1000+234)) | dd of=/dev/vda bs=4096 seek=100 conv=sync,fsync 2>/dev/null; "
                       "echo written-$((6*7))\n",
                       "written-42"))
      << readFile(running["console"]);
  // In use: not deleted, and the pool (locked by the running VM) refuses changes.
  expectRefused(daemon, "DELETE", "/volumes/data", nullptr, acme, 409, "is a disk of VM writer");
  expectRefused(daemon, "POST", "/volumes/data/snapshot", {{"name", "early"}}, acme, 409, "in use");
  ASSERT_EQ(daemon.call("POST", "/vms/writer/destroy", nullptr, acme).first, 200);

  // A snapshot now, then a second VM reads the bytes from the snapshot (read-only) in a new process.
  auto [snapped, snapshot] = daemon.call("POST", "/volumes/data/snapshot", {{"name", "data-snap"}}, acme);
  ASSERT_EQ(snapped, 201) << snapshot;
  EXPECT_EQ(snapshot["origin"], "data");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "reader"}, {"disks", {{{"volume", "data-snap"}}}}}, acme).first, 201);
  auto [readerStarted, reader] = daemon.call("POST", "/vms/reader/start", nullptr, acme);
  ASSERT_EQ(readerStarted, 200) << reader;
  EXPECT_TRUE(consoleAnswers(daemon, "reader", "dd if=/dev/vda bs=4096 skip=100 count=1 2>/dev/null | head -c 15; echo\n",
                             "strata-vol-1234"))
      << readFile(reader["console"]);
  ASSERT_EQ(daemon.call("POST", "/vms/reader/destroy", nullptr, acme).first, 200);

  // The volume outlives its VM's definition only: delete the VMs, then the snapshot and the volume.
  ASSERT_EQ(daemon.call("DELETE", "/vms/writer", nullptr, acme).first, 200);
  ASSERT_EQ(daemon.call("DELETE", "/vms/reader", nullptr, acme).first, 200);
  expectRefused(daemon, "DELETE", "/volumes/data", nullptr, acme, 409, "has the snapshot data-snap");
  EXPECT_EQ(daemon.call("DELETE", "/volumes/data-snap", nullptr, acme).first, 200);
  auto [grown, bigger] = daemon.call("POST", "/volumes/data/resize", {{"size_mib", 2048}}, acme);
  EXPECT_EQ(grown, 200) << bigger;
  EXPECT_EQ(daemon.call("DELETE", "/volumes/data", nullptr, acme).first, 200);
  EXPECT_EQ(daemon.call("GET", "/tenants/acme", nullptr, acme).second["used"]["disk_gib"], 0);
  std::filesystem::remove_all(pvs);
}

TEST(DaemonNetworks, TwoVmsOnOneNetworkPingEachOtherAndOthersCannotJoinIt) {
  DaemonProcess daemon("networks");
  HostSwitchReaper reaper{daemon};
  std::string acme = daemon.newTenantToken("acme"), rival = daemon.newTenantToken("rival");
  // The rival's event stream (curl) sees its own network defined, and nothing of acme's.
  std::string stream = daemon.dataDir() + "/events.txt";
  pid_t client = std::stoi(runShell("curl -sN --unix-socket " + daemon.socket() + " -H 'Authorization: Bearer " + rival +
                                    "' http://localhost/events > " + stream + " 2>&1 & echo $!").output);
  ASSERT_TRUE(waitFor([&] { return contains(readFile(stream), ": subscribed"); }, std::chrono::seconds(10)));
  auto [defined, network] = daemon.call("POST", "/networks", {{"name", "lan"}}, acme);
  ASSERT_EQ(defined, 201) << network << readFile(daemon.dataDir() + ".log");
  EXPECT_EQ(network["vlan"], 100);
  auto [given, rivals] = daemon.call("POST", "/networks", {{"name", "rnet"}, {"tenant", "rival"}, {"vlan", 300}});
  EXPECT_EQ(given, 201) << rivals;
  EXPECT_TRUE(waitFor([&] { return contains(readFile(stream), "rnet"); }, std::chrono::seconds(10))) << readFile(stream);
  ::kill(client, SIGTERM);
  EXPECT_FALSE(contains(readFile(stream), "acme")) << "another tenant's event leaked: " << readFile(stream);
  EXPECT_FALSE(contains(readFile(stream), "\"lan\"")) << readFile(stream);
  EXPECT_EQ(daemon.call("DELETE", "/networks/rnet", nullptr, rival).first, 200);
  expectRefused(daemon, "POST", "/networks", {{"name", "lan"}}, acme, 409, "already exists");
  expectRefused(daemon, "POST", "/networks", {{"name", "a/b"}}, acme, 400, "name:");
  expectRefused(daemon, "POST", "/networks", {{"name", "mine"}, {"vlan", 7}}, acme, 403, "only an admin");
  expectRefused(daemon, "POST", "/networks", {{"name", "mine"}, {"vlan", 5000}}, "", 400, "vlan:");
  ASSERT_EQ(daemon.call("PUT", "/tenants/rival/quota", {{"networks", 0}}).first, 200);
  expectRefused(daemon, "POST", "/networks", {{"name", "mine"}}, rival, 403, "quota exceeded: networks");
  EXPECT_EQ(daemon.call("GET", "/networks", nullptr, rival).second, json::array());
  expectRefused(daemon, "GET", "/networks/lan", nullptr, rival, 404, "no network lan");
  expectRefused(daemon, "DELETE", "/networks/lan", nullptr, rival, 404, "no network lan");
  expectRefused(daemon, "POST", "/vms", {{"name", "spy"}, {"nets", {"network=lan"}}}, rival, 404, "no network lan");
  expectRefused(daemon, "POST", "/vms", {{"name", "spy"}, {"nets", {"switch=host,vlan=100"}}}, rival, 400,
                "expected network=NAME");

  for (std::string name : {"left", "right"}) {
    auto [made, vm] = daemon.call("POST", "/vms", {{"name", name}, {"nets", {"network=lan"}}}, acme);
    ASSERT_EQ(made, 201) << vm;
    EXPECT_TRUE(std::regex_match(vm["nets"][0].get<std::string>(),
                                 std::regex("switch=host-[0-9a-f]{8},vlan=100,mac=02(:[0-9a-f]{2}){5}")))
        << vm;
    auto [started, running] = daemon.call("POST", "/vms/" + name + "/start", nullptr, acme);
    ASSERT_EQ(started, 200) << running;
  }
  ASSERT_TRUE(consoleAnswers(daemon, "left", "ip link set eth0 up; ip addr add 10.77.0.1/24 dev eth0; echo l-$((1+1))\n",
                             "l-2"));
  ASSERT_TRUE(consoleAnswers(daemon, "right", "ip link set eth0 up; ip addr add 10.77.0.2/24 dev eth0; echo r-$((2+2))\n",
                             "r-4"));
  std::string leftConsole = daemon.dataDir() + "/vms/left/console.log";
  EXPECT_TRUE(typeOnce(daemon, "left",
                       "n=0; until ping -c 1 -w 2 10.77.0.2 >/dev/null; do n=$((n+1)); [ $n -ge 30 ] && break; done; "
                       "ping -c 3 -w 10 10.77.0.2; echo pinged-$((5*5))\n",
                       "pinged-25"));
  EXPECT_TRUE(contains(readFile(leftConsole), "3 packets transmitted, 3 packets received")) << readFile(leftConsole);
  // The network shows both VMs' switch ports and the bytes they sent and received.
  auto [shown, info] = daemon.call("GET", "/networks/lan", nullptr, acme);
  ASSERT_EQ(shown, 200) << info;
  EXPECT_EQ(info["switch"], "running");
  ASSERT_EQ(info["ports"].size(), 2u) << info;
  for (const auto& port : info["ports"]) {
    EXPECT_GT(port["rx_bytes"].get<uint64_t>(), 0u) << info;
    EXPECT_GT(port["tx_bytes"].get<uint64_t>(), 0u) << info;
  }
  // The switch (and so the network) outlives a killed daemon, which finds it again.
  pid_t switchBefore = hostSwitchPid(daemon);
  daemon.stop(SIGKILL);
  daemon.start();
  EXPECT_EQ(hostSwitchPid(daemon), switchBefore) << "a restarted daemon started a second switch";
  auto afterRestart = daemon.call("GET", "/networks/lan", nullptr, acme).second;
  EXPECT_EQ(afterRestart["ports"].size(), 2u) << afterRestart;
  auto cli = runShell("STRATA_TOKEN=" + acme + " " + strataBinary() + " network info lan --daemon " + daemon.socket() + " 2>&1");
  EXPECT_EQ(cli.exitCode, 0) << cli.output;
  EXPECT_TRUE(contains(cli.output, "left")) << cli.output;
  expectRefused(daemon, "DELETE", "/networks/lan", nullptr, acme, 409, "has VM left attached");
  for (std::string name : {"left", "right"}) {
    EXPECT_EQ(daemon.call("POST", "/vms/" + name + "/destroy", nullptr, acme).first, 200);
    EXPECT_EQ(daemon.call("DELETE", "/vms/" + name, nullptr, acme).first, 200);
  }
  pid_t switchPid = hostSwitchPid(daemon);
  ASSERT_GT(switchPid, 0);
  EXPECT_EQ(daemon.call("DELETE", "/networks/lan", nullptr, acme).first, 200);
  EXPECT_TRUE(waitFor([&] { return processEnded(switchPid); }, std::chrono::seconds(10)))
      << "the host switch runs on without networks";
}

TEST(DaemonCli, ManagesPoolsVolumesAndNetworksAsTablesOrJson) {
  DaemonProcess daemon("scli");
  HostSwitchReaper reaper{daemon};
  std::string pv = sparseFile(daemon.dataDir() + "-pv.img", 128);
  std::string cli = "STRATA_TOKEN=" + daemon.adminToken() + " " + strataBinary() + " ";
  std::string at = " --daemon " + daemon.socket() + " 2>&1";
  auto defined = runShell(cli + "pool define small " + pv + " --thin-mib 64" + at);
  EXPECT_EQ(defined.exitCode, 0) << defined.output;
  EXPECT_TRUE(contains(defined.output, "small")) << defined.output;
  auto created = runShell(cli + "pool volume create disk1 --pool small --size-mib 512" + at);
  EXPECT_EQ(created.exitCode, 0) << created.output;
  auto listed = runShell(cli + "pool volume list -o json" + at);
  auto volumes = json::parse(listed.output, nullptr, false);
  ASSERT_TRUE(volumes.is_array()) << listed.output;
  EXPECT_EQ(volumes[0]["name"], "disk1");
  EXPECT_EQ(volumes[0]["size_mib"], 512);
  auto table = runShell(cli + "pool volume list" + at);
  EXPECT_TRUE(contains(table.output, "NAME")) << table.output;
  auto missing = runShell(cli + "pool volume info nosuch" + at);
  EXPECT_NE(missing.exitCode, 0);
  EXPECT_TRUE(contains(missing.output, "404")) << missing.output;
  auto network = runShell(cli + "network define lan --vlan 42" + at);
  EXPECT_EQ(network.exitCode, 0) << network.output;
  EXPECT_TRUE(contains(runShell(cli + "network list" + at).output, "42"));
  EXPECT_EQ(runShell(cli + "pool volume delete disk1" + at).exitCode, 0);
  EXPECT_EQ(runShell(cli + "network delete lan" + at).exitCode, 0);
  std::filesystem::remove(pv);
}

}  // namespace
}  // namespace strata::test
