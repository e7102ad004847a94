// `strata vm`: drive a running VM through its control API (`strata run
// --api-socket PATH`): `strata vm status|pause|resume|shutdown|reset
// --api-socket PATH [--json]`, `strata vm snapshot --api-socket PATH DIR [--no-resume] [--compress]`,
// `strata vm migrate --api-socket PATH --to tcp:HOST:PORT [--channels N] [--compress] [--with-disks]`; given a VM NAME instead
// (snapshot: in DIR's place), the same commands go through the daemon (vm_daemon.cpp),
// which adds its own subcommands to the group.
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/core.h>

#include "api_client.h"
#include "commands.h"
#include "daemon_client.h"
#include "vmm/vm_config.h"

namespace strata::cli {
namespace {

struct VmArgs {
  std::string apiSocket;
  bool json = false;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "strata vm: %s\n", message.c_str());
  return 1;
}

std::string text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

void printSummary(const nlohmann::json& vm) {
  const nlohmann::json& config = vm.value("config", nlohmann::json::object());
  std::printf("state:   %s\n", text(vm.value("state", nlohmann::json())).c_str());
  std::printf("uptime:  %.1f s\n", vm.value("uptime_s", 0.0));
  std::printf("vcpus:   %s\n", text(vm.value("vcpus", nlohmann::json())).c_str());
  std::printf("memory:  %llu MiB\n", static_cast<unsigned long long>(vm.value("memory_bytes", uint64_t{0}) >> 20));
  if (vm.contains("migration")) std::printf("migration: %s\n", text(vm["migration"]).c_str());
  if (vm.contains("ksm_merging_pages")) {
    auto pages = vm.value("ksm_merging_pages", uint64_t{0});
    std::printf("shared:  %llu pages merged by the host's KSM (%llu MiB)\n", static_cast<unsigned long long>(pages),
                static_cast<unsigned long long>(pages >> 8));
  }
  std::printf("engine:  %s\n", text(config.value("engine", nlohmann::json())).c_str());
  std::printf("kernel:  %s\n", text(config.value("kernel", nlohmann::json())).c_str());
  for (const auto& disk : config.value("disks", nlohmann::json::array()))
    std::printf("disk:    %s (%s%s)\n", text(disk.value("path", nlohmann::json())).c_str(),
                text(disk.value("format", nlohmann::json())).c_str(), disk.value("read_only", false) ? ", read-only" : "");
  for (const auto& net : config.value("nets", nlohmann::json::array())) std::printf("net:     %s\n", net.dump().c_str());
}

int showStatus(const VmArgs& args) {
  auto vm = apiCall(args.apiSocket, "GET", "/vm");
  if (!vm) return fail(vm.error().message);
  if (args.json) std::printf("%s\n", vm->dump(2).c_str());
  else printSummary(*vm);
  return 0;
}

int changeState(const VmArgs& args, const std::string& action) {
  auto reply = apiCall(args.apiSocket, "PUT", "/vm/state", {{"action", action}});
  if (!reply) return fail(reply.error().message);
  if (args.json) std::printf("%s\n", reply->dump(2).c_str());
  else std::printf("%s\n", text(reply->value("state", nlohmann::json())).c_str());
  return 0;
}

void printBalloon(const nlohmann::json& balloon) {
  auto mib = [&](const char* key) { return static_cast<unsigned long long>(balloon.value(key, uint64_t{0}) >> 20); };
  std::printf("target:   %llu MiB\n", mib("target_bytes"));
  if (balloon.contains("auto")) {
    const nlohmann::json& automatic = balloon["auto"];
    auto autoMib = [&](const char* key) { return static_cast<unsigned long long>(automatic.value(key, uint64_t{0}) >> 20); };
    std::printf("auto:     keeps %llu MiB free on the host, at most %llu MiB, last move %s (%llu moves)\n",
                autoMib("host_free_bytes"), autoMib("max_bytes"), text(automatic.value("last_move", nlohmann::json())).c_str(),
                static_cast<unsigned long long>(automatic.value("moves", uint64_t{0})));
  }
  if (!balloon.value("device_active", false)) {
    std::printf("device:   not active (the guest is rebooting)\n");
    return;
  }
  std::printf("actual:   %llu MiB (the guest's figure)\n", mib("actual_bytes"));
  std::printf("inflated: %llu MiB (freed by the host)\n", mib("inflated_bytes"));
  std::printf("reported: %llu MiB (free page reporting, in all)\n", mib("reported_bytes"));
  const nlohmann::json statistics = balloon.value("statistics", nlohmann::json::object());
  for (const auto& [name, value] : statistics.items())
    std::printf("guest %s: %s\n", name.c_str(), value.dump().c_str());
}

// SIZE: a byte count as --mem takes it (128M, 1G); empty: only show the balloon.
int balloon(const VmArgs& args, const std::string& size) {
  if (!size.empty()) {
    auto bytes = vmm::parseByteSize(size, "balloon target");
    if (!bytes) return fail(bytes.error().message);
    auto set = apiCall(args.apiSocket, "PUT", "/vm/balloon", {{"target_bytes", *bytes}});
    if (!set) return fail(set.error().message);
  }
  auto reply = apiCall(args.apiSocket, "GET", "/vm/balloon");
  if (!reply) return fail(reply.error().message);
  if (args.json) std::printf("%s\n", reply->dump(2).c_str());
  else printBalloon(*reply);
  return 0;
}

int snapshot(const VmArgs& args, const std::string& dir, bool noResume, bool compress) {
  auto reply = apiCall(args.apiSocket, "PUT", "/vm/snapshot",
                       {{"dir", std::filesystem::absolute(dir).string()}, {"resume", !noResume}, {"compress", compress}});
  if (!reply) return fail(reply.error().message);
  if (args.json) std::printf("%s\n", reply->dump(2).c_str());
  else std::printf("snapshot in %s, VM %s\n", dir.c_str(), text(reply->value("state", nlohmann::json())).c_str());
  return 0;
}

struct MigrateArgs {
  std::string to;
  unsigned channels = 1;
  bool compress = false;
  uint64_t downtimeMs = 30;
  bool noAutoConverge = false;
  bool postcopy = false;
  bool withDisks = false;
  std::string tlsCa;
};

nlohmann::json migrationRequest(const MigrateArgs& migrateArgs) {
  nlohmann::json body = {{"to", migrateArgs.to},
                         {"channels", migrateArgs.channels},
                         {"compress", migrateArgs.compress},
                         {"downtime_ms", migrateArgs.downtimeMs},
                         {"auto_converge", !migrateArgs.noAutoConverge},
                         {"postcopy", migrateArgs.postcopy},
                         {"with_disks", migrateArgs.withDisks}};
  if (!migrateArgs.tlsCa.empty()) body["tls_ca"] = std::filesystem::absolute(migrateArgs.tlsCa).string();
  return body;
}

// Starts the migration, then follows GET /vm/migrate until it completed or failed.
int migrate(const VmArgs& args, const MigrateArgs& migrateArgs) {
  auto started = apiCall(args.apiSocket, "PUT", "/vm/migrate", migrationRequest(migrateArgs));
  if (!started) return fail(started.error().message);
  for (;;) {
    auto progress = apiCall(args.apiSocket, "GET", "/vm/migrate");
    if (!progress) return fail("lost the VM's API while migrating: " + progress.error().message);
    const std::string state = progress->value("state", "");
    if (state == "active") {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (args.json) std::printf("%s\n", progress->dump(2).c_str());
    if (state == "postcopy-paused")
      return fail("post-copy migration paused after the switch-over (" + progress->value("error", "") +
                  "): the VM waits at the destination for pages this side keeps; shut either side down to end it");
    if (state == "failed") return fail("migration failed, the VM runs on here: " + progress->value("error", ""));
    if (!args.json)
      std::printf("migrated to %s: %llu MiB sent in %.0f ms, %.0f ms downtime, %u rounds%s\n", migrateArgs.to.c_str(),
                  static_cast<unsigned long long>(progress->value("bytes_sent", uint64_t{0}) >> 20),
                  progress->value("total_ms", 0.0), progress->value("downtime_ms", 0.0),
                  progress->value("iteration", 0u) + 1,
                  migrateArgs.postcopy ? fmt::format(", then {} pages post-copy",
                                                     progress->value("postcopy_pages", uint64_t{0})).c_str()
                                       : "");
    return 0;
  }
}

}  // namespace

CLI::App* addVmCommands(CLI::App& app, CommandStatus& status) {
  auto* vm = app.add_subcommand("vm", "control a running VM through its API socket (strata run --api-socket)");
  vm->require_subcommand(1);
  auto args = std::make_shared<VmArgs>();
  auto addAction = [&](const std::string& name, const std::string& description, std::function<int()> act) {
    auto* command = vm->add_subcommand(name, description);
    auto daemonVm = addDaemonVmOptions(*command);
    command->add_option("--api-socket", args->apiSocket, "the VM's API socket (instead of a daemon's VM NAME)");
    command->add_flag("--json", args->json, "print the API's JSON answer as it is");
    command->callback([&status, act, args, daemonVm, name] {
      if (args->apiSocket.empty() != namesDaemonVm(*daemonVm))  // neither or both
        status.exitCode = fail("give a VM NAME (one strata daemon manages) or --api-socket PATH");
      else
        status.exitCode = args->apiSocket.empty() ? daemonVmAction(*daemonVm, name, args->json) : act();
    });
  };
  addAction("status", "print the VM's state, uptime, vCPUs, memory and configuration",
            [args] { return showStatus(*args); });
  for (const auto& [action, description] :
       {std::pair<std::string, std::string>{"pause", "stop every vCPU at an instruction boundary, finish disk I/O"},
        {"resume", "run a paused VM on from where it stopped"},
        {"shutdown", "stop the VM (strata run exits 0)"},
        {"reset", "reboot the guest"}})
    addAction(action, description, [args, action] { return changeState(*args, action); });
  // balloon and snapshot are served by the VM's own API only (a daemon's VM NAME would take SIZE's or DIR's place).
  auto* balloonCommand =
      vm->add_subcommand("balloon", "show the balloon, or set its target (memory taken back from the guest), e.g. 128M");
  auto balloonSize = std::make_shared<std::string>();
  balloonCommand->add_option("--api-socket", args->apiSocket, "the VM's API socket")->required();
  balloonCommand->add_option("SIZE", *balloonSize, "new target, e.g. 128M (0: give everything back)");
  balloonCommand->add_flag("--json", args->json, "print the API's JSON answer as it is");
  balloonCommand->callback([&status, args, balloonSize] { status.exitCode = balloon(*args, *balloonSize); });
  auto* snapshotCommand = vm->add_subcommand(
      "snapshot", "pause, write the VM's state and memory into DIR (for strata run --restore DIR), resume; given a "
                  "daemon's VM NAME, into the daemon's snapshot of it (`strata vm clone` makes VMs from it)");
  auto snapshotDir = std::make_shared<std::string>();
  auto noResume = std::make_shared<bool>(false);
  auto daemon = std::make_shared<DaemonConnection>();
  addConnectionOptions(*snapshotCommand, *daemon);
  snapshotCommand->add_option("--api-socket", args->apiSocket, "the VM's API socket (instead of a daemon's VM NAME)");
  snapshotCommand->add_option("DIR", *snapshotDir, "with --api-socket: the snapshot directory (created if missing); "
                                                   "else the daemon's VM NAME")->required();
  snapshotCommand->add_flag("--no-resume", *noResume, "leave the VM paused after the snapshot");
  auto compress = std::make_shared<bool>(false);
  snapshotCommand->add_flag("--compress", *compress,
                            "write the memory zstd-compressed (smaller; a restore then reads it all instead of mapping it)");
  snapshotCommand->add_flag("--json", args->json, "print the API's JSON answer as it is");
  snapshotCommand->callback([&status, args, snapshotDir, noResume, compress, daemon] {
    status.exitCode = args->apiSocket.empty()
                          ? daemonVmOperation(*daemon, *snapshotDir, "snapshot",
                                              {{"resume", !*noResume}, {"compress", *compress}}, args->json)
                          : snapshot(*args, *snapshotDir, *noResume, *compress);
  });
  auto* migrateCommand = vm->add_subcommand(
      "migrate", "live-migrate the VM to a `strata run --incoming tcp:ADDR:PORT` (this VM ends once it runs there)");
  auto migrateArgs = std::make_shared<MigrateArgs>();
  auto migrateName = std::make_shared<std::string>();
  addConnectionOptions(*migrateCommand, *daemon);
  migrateCommand->add_option("name", *migrateName, "the daemon's VM NAME (instead of --api-socket)");
  migrateCommand->add_option("--api-socket", args->apiSocket, "the VM's API socket");
  migrateCommand->add_option("--to", migrateArgs->to, "the destination, tcp:HOST:PORT")->required();
  migrateCommand->add_option("--channels", migrateArgs->channels, "parallel TCP connections (1-16)")->capture_default_str();
  migrateCommand->add_flag("--compress", migrateArgs->compress, "compress pages with zstd");
  migrateCommand->add_option("--downtime-ms", migrateArgs->downtimeMs, "the longest pause to aim for")->capture_default_str();
  migrateCommand->add_flag("--no-auto-converge", migrateArgs->noAutoConverge,
                           "never throttle the vCPUs of a guest dirtying memory faster than the link");
  migrateCommand->add_flag("--postcopy", migrateArgs->postcopy,
                           "switch to the destination after two rounds; it fetches the remaining pages on fault "
                           "(from then on, a lost link pauses it on both sides until a shutdown; with --with-disks "
                           "the disks are whole first)");
  migrateCommand->add_flag("--with-disks", migrateArgs->withDisks,
                           "no shared storage: mirror each disk to the destination's own --disk files (each the same "
                           "virtual size) while the VM runs");
  migrateCommand->add_option("--tls-ca", migrateArgs->tlsCa,
                             "speak TLS; the destination (strata run --incoming ... --tls-certs DIR) must present a "
                             "certificate this CA signed for the --to address");
  migrateCommand->add_flag("--json", args->json, "print the final progress JSON as it is");
  migrateCommand->callback([&status, args, migrateArgs, migrateName, daemon] {
    if (args->apiSocket.empty() == migrateName->empty())  // neither or both
      status.exitCode = fail("give a VM NAME (one strata daemon manages) or --api-socket PATH");
    else
      status.exitCode = migrateName->empty()
                            ? migrate(*args, *migrateArgs)
                            : daemonVmOperation(*daemon, *migrateName, "migrate", migrationRequest(*migrateArgs), args->json);
  });
  return vm;
}

}  // namespace strata::cli
