// The VM lifecycle through `strata daemon`: a template's snapshot that VMs
// resume as clones instead of booting (the guest state they answer with came
// from the snapshot); a VM's snapshot as an operation, clones of it within the
// tenant's quota, live migration to a `strata run --incoming`; the refusals around them.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <string>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "daemon_process.h"
#include "loopback_ports.h"

namespace strata::test {
namespace {

using nlohmann::json;

// A small raw disk in the tenant's directory, as a template `name` of that tenant.
json importSmallTemplate(DaemonProcess& daemon, const std::string& tenant, const std::string& token,
                         const std::string& name) {
  std::string image = daemon.dataDir() + "/tenants/" + tenant + "/" + name + ".raw";
  EXPECT_EQ(runShell("head -c 1048576 /dev/zero > " + image).exitCode, 0);
  return importTemplate(daemon, {{"name", name}, {"path", image}}, token);
}

// A template's snapshot is replaced ({"replace": true}, `strata template snapshot --replace`) only
// when no VM resumes the old one; the old one stays in use until the new one is whole.
TEST(DaemonTemplates, ASnapshotIsReplacedOnceNoVmResumesTheOldOne) {
  DaemonProcess daemon("tsrep");  // short: the VMs' socket paths must fit
  std::string acme = daemon.newTenantToken("acme");
  ASSERT_EQ(importSmallTemplate(daemon, "acme", acme, "base")["state"], "succeeded");
  auto [status, started] =
      daemon.call("POST", "/templates/base/snapshot", {{"commands", "echo first-$((1+1)) > /tmp/mark"}}, acme);
  ASSERT_EQ(status, 202) << started;
  ASSERT_EQ(finishOperation(daemon, started, acme)["state"], "succeeded");
  std::string first = daemon.dataDir() + "/templates/base.snapshot";

  expectRefused(daemon, "POST", "/templates/base/snapshot", json::object(), acme, 409, R"(replace it with {"replace": true})");
  expectRefused(daemon, "POST", "/templates/base/snapshot", {{"replace", "yes"}}, acme, 400, "replace: expected true or false");
  for (const char* name : {"old1", "old2"})
    ASSERT_EQ(daemon.call("POST", "/vms", {{"name", name}, {"template", "base"}}, acme).first, 201);
  ASSERT_EQ(daemon.call("POST", "/vms/old1/start", nullptr, acme).first, 200);
  expectRefused(daemon, "POST", "/templates/base/snapshot", {{"replace", true}}, acme, 409,
                "template base's snapshot is resumed by VMs old1, old2: delete them first");
  ASSERT_EQ(daemon.call("POST", "/vms/old1/destroy", nullptr, acme).first, 200);
  for (const char* name : {"old1", "old2"}) ASSERT_EQ(daemon.call("DELETE", std::string("/vms/") + name, nullptr, acme).first, 200);

  // Through the CLI: the old snapshot serves (and stays) until the new one is whole.
  std::thread replacing([&] {
    auto cli = runShell(strataBinary() + " template snapshot base --replace --commands 'echo second-$((2+2)) > /tmp/mark' --daemon " +
                        daemon.socket() + " --token " + acme + " 2>&1");
    EXPECT_EQ(cli.exitCode, 0) << cli.output;
  });
  bool sawBoth = waitFor([&] { return std::filesystem::exists(first + ".1"); }, std::chrono::seconds(30)) &&
                 std::filesystem::exists(first + "/ready.json");
  replacing.join();
  EXPECT_TRUE(sawBoth) << "the new snapshot's directory did not appear beside the old one";
  EXPECT_FALSE(std::filesystem::exists(first)) << "the replaced snapshot stayed";
  EXPECT_TRUE(std::filesystem::exists(first + ".1/ready.json"));

  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "new1"}, {"template", "base"}}, acme).first, 201);
  ASSERT_EQ(daemon.call("POST", "/vms/new1/start", nullptr, acme).first, 200);
  EXPECT_TRUE(consoleAnswers(daemon, "new1", "cat /tmp/mark\n", "second-4"))
      << readFile(daemon.dataDir() + "/vms/new1/console.log");
  daemon.call("POST", "/vms/new1/destroy", nullptr, acme);
  ASSERT_EQ(daemon.call("DELETE", "/vms/new1", nullptr, acme).first, 200);
  EXPECT_EQ(daemon.call("DELETE", "/templates/base", nullptr, acme).first, 200);
  EXPECT_FALSE(std::filesystem::exists(first + ".1")) << "the template's snapshot outlived it";
}

TEST(DaemonTemplates, VmsFromATemplateSnapshotResumeWithItsGuestState) {
  DaemonProcess daemon("tsnap");
  std::string acme = daemon.newTenantToken("acme"), globex = daemon.newTenantToken("globex");
  ASSERT_EQ(importSmallTemplate(daemon, "acme", acme, "base")["state"], "succeeded");

  // The template's guest writes a file to /tmp (RAM) before the snapshot.
  auto [status, started] = daemon.call(
      "POST", "/templates/base/snapshot", {{"commands", "echo made-in-template-$((40+2)) > /tmp/mark"}}, acme);
  ASSERT_EQ(status, 202) << started;
  EXPECT_EQ(started["operation"]["kind"], "snapshot");
  auto taken = finishOperation(daemon, started, acme);
  ASSERT_EQ(taken["state"], "succeeded") << taken << readFile(daemon.dataDir() + "/templates/base.snapshot/strata.log");
  EXPECT_EQ(daemon.call("GET", "/templates/base", nullptr, acme).second["snapshot"], true);

  // Two VMs resumed from it: each answers with the file the template's guest wrote, on its own fresh console.
  for (const char* name : {"r1", "r2"}) {
    auto [created, vm] = daemon.call("POST", "/vms", {{"name", name}, {"template", "base"}}, acme);
    ASSERT_EQ(created, 201) << vm;
    EXPECT_EQ(vm["memory_mib"], 256);
    auto [ran, running] = daemon.call("POST", std::string("/vms/") + name + "/start", nullptr, acme);
    ASSERT_EQ(ran, 200) << running << readFile(daemon.dataDir() + "/vms/" + name + "/strata.log");
    EXPECT_TRUE(consoleAnswers(daemon, name, "cat /tmp/mark\n", "made-in-template-42"))
        << readFile(daemon.dataDir() + "/vms/" + name + "/console.log")
        << readFile(daemon.dataDir() + "/vms/" + name + "/strata.log");
    // Its disk is its own linked clone, in its own directory, backed by the snapshot's disk.
    std::string disk = daemon.dataDir() + "/vms/" + name + "/clone-disk0.qcow2";
    auto info = json::parse(runShell(strataBinary() + " image info --output json " + disk).output, nullptr, false);
    EXPECT_EQ(info["backing-filename"], daemon.dataDir() + "/templates/base.snapshot/disk.qcow2") << info;
  }
  // The clones' writes stay theirs: r2 writes, r1 does not see it.
  EXPECT_TRUE(consoleAnswers(daemon, "r2", "echo r2-only > /tmp/mark; cat /tmp/mark\n", "r2-only"));
  EXPECT_TRUE(consoleAnswers(daemon, "r1", "cat /tmp/mark; echo r1-$((2*3))\n", "r1-6"));
  EXPECT_EQ(readFile(daemon.dataDir() + "/vms/r1/console.log").find("r2-only"), std::string::npos);

  // Stopped and started again, a VM boots its own disk (the snapshot was its first start only).
  ASSERT_EQ(daemon.call("POST", "/vms/r1/destroy", nullptr, acme).first, 200);
  ASSERT_EQ(daemon.call("POST", "/vms/r1/start", nullptr, acme).first, 200);
  EXPECT_TRUE(consoleAnswers(daemon, "r1", "test -e /tmp/mark || echo fresh-$((3*3))\n", "fresh-9"));

  // Refusals: a 4xx JSON error naming what is wrong.
  auto refused = [&](const std::string& method, const std::string& path, const json& body, const std::string& token,
                     int expected, const std::string& message) {
    expectRefused(daemon, method, path, body, token, expected, message);
  };
  refused("POST", "/templates/base/snapshot", json::object(), acme, 409, "already has a snapshot");
  refused("POST", "/templates/base/snapshot", json::object(), globex, 404, "no template base");
  refused("POST", "/templates/nope/snapshot", json::object(), acme, 404, "no template nope");
  ASSERT_EQ(importSmallTemplate(daemon, "acme", acme, "other")["state"], "succeeded");
  refused("POST", "/templates/other/snapshot", {{"disks", json::array()}}, acme, 400, "unknown field 'disks'");
  refused("POST", "/templates/other/snapshot", {{"commands", 7}}, acme, 400, "commands: expected a string");
  refused("POST", "/templates/other/snapshot", {{"cpus", 99}}, acme, 400, "cpus:");
  refused("POST", "/templates/other/snapshot", {{"kernel", "/etc/passwd"}}, acme, 400, "outside the tenant's");
  EXPECT_EQ(daemon.call("GET", "/templates/other", nullptr, acme).second["snapshot"], false);
  refused("POST", "/vms", {{"name", "r3"}, {"template", "base"}, {"append", "quiet"}}, acme, 400,
          "append: template base resumes its snapshot");
  refused("POST", "/vms", {{"name", "r3"}, {"template", "base"}, {"memory_mib", 512}}, acme, 400,
          "memory_mib: template base's snapshot has 256");
  refused("POST", "/vms", {{"name", "r3"}, {"template", "base"}}, globex, 404, "no template base");

  // The template goes, with its snapshot, once no VM comes from it.
  for (const char* name : {"r1", "r2"}) {
    daemon.call("POST", std::string("/vms/") + name + "/destroy", nullptr, acme);
    EXPECT_EQ(daemon.call("DELETE", std::string("/vms/") + name, nullptr, acme).first, 200);
  }
  EXPECT_EQ(daemon.call("DELETE", "/templates/base", nullptr, acme).first, 200);
  EXPECT_FALSE(std::filesystem::exists(daemon.dataDir() + "/templates/base.snapshot"));
}

TEST(DaemonVms, SnapshotCloneAndMigrateWithinTheTenant) {
  DaemonProcess daemon("vmlife");
  std::string acme = daemon.newTenantToken("acme"), globex = daemon.newTenantToken("globex");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "src"}}, acme).first, 201);
  ASSERT_EQ(daemon.call("POST", "/vms/src/start", nullptr, acme).first, 200);
  ASSERT_TRUE(consoleAnswers(daemon, "src", "echo state-$((1+1)) > /tmp/s; echo saved-$((2+2))\n", "saved-4"))
      << readFile(daemon.dataDir() + "/vms/src/console.log");

  // The snapshot is an operation; the VM runs on.
  auto [status, started] = daemon.call("POST", "/vms/src/snapshot", nullptr, acme);
  ASSERT_EQ(status, 202) << started;
  std::string id = started["snapshot"];
  auto taken = finishOperation(daemon, started, acme);
  ASSERT_EQ(taken["state"], "succeeded") << taken;
  EXPECT_EQ(taken["kind"], "snapshot");
  EXPECT_EQ(daemon.call("GET", "/vms/src", nullptr, acme).second["state"], "running");

  // A clone resumes it: the file written before the snapshot is there.
  auto [cloned, clone] = daemon.call("POST", "/vms/src/clone", {{"name", "c1"}, {"snapshot", id}}, acme);
  ASSERT_EQ(cloned, 201) << clone;
  EXPECT_EQ(clone["tenant"], "acme");
  ASSERT_EQ(daemon.call("POST", "/vms/c1/start", nullptr, acme).first, 200)
      << readFile(daemon.dataDir() + "/vms/c1/strata.log");
  EXPECT_TRUE(consoleAnswers(daemon, "c1", "cat /tmp/s\n", "state-2"))
      << readFile(daemon.dataDir() + "/vms/c1/console.log") << readFile(daemon.dataDir() + "/vms/c1/strata.log");

  // Another tenant sees none of it.
  for (const char* path : {"/vms/src/snapshot", "/vms/src/clone", "/vms/src/migrate"})
    expectRefused(daemon, "POST", path, {{"name", "g1"}, {"snapshot", id}, {"to", "tcp:127.0.0.1:1"}}, globex, 404,
                  "no VM src");
  // Bad input: 4xx with a JSON error naming what is wrong.
  expectRefused(daemon, "POST", "/vms/src/snapshot", {{"resume", "no"}}, acme, 400, "resume: expected true or false");
  expectRefused(daemon, "POST", "/vms/src/snapshot", {{"dir", "/tmp"}}, acme, 400, "unknown field 'dir'");
  expectRefused(daemon, "POST", "/vms/src/clone", {{"name", "c2"}}, acme, 400, "expected {");
  expectRefused(daemon, "POST", "/vms/src/clone", {{"name", "../c2"}, {"snapshot", id}}, acme, 400, "name: expected");
  expectRefused(daemon, "POST", "/vms/src/clone", {{"name", "c2"}, {"snapshot", "999"}}, acme, 404, "no snapshot 999 of VM src");
  expectRefused(daemon, "POST", "/vms/src/clone", {{"name", "c1"}, {"snapshot", id}}, acme, 409, "already exists");
  ASSERT_EQ(daemon.call("PUT", "/tenants/acme/quota", {{"vms", 2}}).first, 200);
  expectRefused(daemon, "POST", "/vms/src/clone", {{"name", "c2"}, {"snapshot", id}}, acme, 403, "quota exceeded: vms");
  expectRefused(daemon, "DELETE", "/vms/src", nullptr, acme, 409, "VM c1 is a clone of src's snapshot");
  expectRefused(daemon, "POST", "/vms/src/migrate", {{"to", "nowhere"}}, acme, 400, "migration refused");
  expectRefused(daemon, "POST", "/vms/src/migrate", json::array(), acme, 400, "must be a JSON object");
  ASSERT_EQ(daemon.call("POST", "/vms/c1/destroy", nullptr, acme).first, 200);
  expectRefused(daemon, "POST", "/vms/c1/migrate", {{"to", "tcp:127.0.0.1:1"}}, acme, 409, "c1 is stopped");

  // Live migration to a `strata run --incoming` with the same board: the operation
  // ends when the VM runs there, with the shell state it had here.
  int port = freePort();
  std::string dest = temporaryPath("vmlife-dest");
  std::filesystem::remove_all(dest);
  std::filesystem::create_directories(dest);
  auto destination = runShell(fmt::format("{} run --incoming tcp:127.0.0.1:{} --console file={}/console.log "
                                          "--console-socket {}/tty.sock > {}/strata.log 2>&1 & echo $!",
                                          strataBinary(), port, dest, dest, dest));
  ASSERT_TRUE(waitFor([&] { return listensOn(port); }, std::chrono::seconds(60))) << readFile(dest + "/strata.log");
  auto [moving, migration] =
      daemon.call("POST", "/vms/src/migrate", {{"to", fmt::format("tcp:127.0.0.1:{}", port)}}, acme);
  ASSERT_EQ(moving, 202) << migration;
  auto moved = finishOperation(daemon, migration, acme);
  EXPECT_EQ(moved["state"], "succeeded") << moved;
  EXPECT_GT(moved["done"].get<uint64_t>(), 0u) << moved;
  EXPECT_TRUE(consoleAnswers(dest + "/tty.sock", dest + "/console.log", "cat /tmp/s; echo there-$((3+4))\n", "there-7"))
      << readFile(dest + "/console.log") << readFile(dest + "/strata.log");
  EXPECT_NE(readFile(dest + "/console.log").find("state-2"), std::string::npos);
  EXPECT_TRUE(waitFor([&] { return daemon.call("GET", "/vms/src", nullptr, acme).second["state"] == "stopped"; },
                      std::chrono::seconds(30)));
  ::kill(std::stoi(destination.output), SIGKILL);
}

}  // namespace
}  // namespace strata::test
