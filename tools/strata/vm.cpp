// `strata vm`: drive a running VM through its control API (`strata run
// --api-socket PATH`): `strata vm status|pause|resume|shutdown|reset
// --api-socket PATH [--json]`. Other ways to name a VM (a daemon's VM names)
// add their subcommands to the group addVmCommands returns.
#include <cstdio>

#include <fmt/core.h>

#include "api_client.h"
#include "commands.h"

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

}  // namespace

CLI::App* addVmCommands(CLI::App& app, CommandStatus& status) {
  auto* vm = app.add_subcommand("vm", "control a running VM through its API socket (strata run --api-socket)");
  vm->require_subcommand(1);
  auto args = std::make_shared<VmArgs>();
  auto addAction = [&](const std::string& name, const std::string& description, std::function<int()> act) {
    auto* command = vm->add_subcommand(name, description);
    command->add_option("--api-socket", args->apiSocket, "the VM's API socket")->required();
    command->add_flag("--json", args->json, "print the API's JSON answer as it is");
    command->callback([&status, act] { status.exitCode = act(); });
  };
  addAction("status", "print the VM's state, uptime, vCPUs, memory and configuration",
            [args] { return showStatus(*args); });
  for (const auto& [action, description] :
       {std::pair<std::string, std::string>{"pause", "stop every vCPU at an instruction boundary, finish disk I/O"},
        {"resume", "run a paused VM on from where it stopped"},
        {"shutdown", "stop the VM (strata run exits 0)"},
        {"reset", "reboot the guest"}})
    addAction(action, description, [args, action] { return changeState(*args, action); });
  return vm;
}

}  // namespace strata::cli
