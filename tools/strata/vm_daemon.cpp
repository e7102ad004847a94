// `strata vm list|define|create|clone|start|destroy|delete|info|console NAME`: the VM commands that
// go through the management daemon (`strata daemon`), as a table for people or
// JSON (-o json) for scripts; and the daemon side of vm.cpp's
// status|pause|resume|shutdown|reset|snapshot|migrate when they are given a NAME.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "daemon_client.h"

namespace strata::cli {

struct DaemonVmArgs : DaemonConnection {
  std::string name, specFile;
  unsigned timeout = 0;  // shutdown: 0 = the daemon's default
};

namespace {

using nlohmann::json;

void printTable(const json& vms) {
  std::printf("%-24s %-16s %-9s %4s %8s %s\n", "NAME", "TENANT", "STATE", "CPUS", "MEMORY", "PID");
  for (const auto& vm : vms)
    std::printf("%-24s %-16s %-9s %4s %7sM %s\n", cell(vm["name"]).c_str(), cell(vm["tenant"]).c_str(),
                cell(vm["state"]).c_str(), cell(vm["cpus"]).c_str(), cell(vm["memory_mib"]).c_str(),
                vm.contains("pid") ? cell(vm["pid"]).c_str() : "-");
}

void printInfo(const json& vm) {
  for (const auto& [key, value] : vm.items()) std::printf("%-11s %s\n", (key + ":").c_str(), cell(value).c_str());
}

int call(const DaemonVmArgs& args, const std::string& what, control::HttpRequest request,
         void (*printForPeople)(const json&)) {
  return daemonCall(args, "vm " + what, std::move(request), printForPeople);
}

void printVm(const json& vm) { printTable(json::array({vm})); }

}  // namespace

std::shared_ptr<DaemonVmArgs> addDaemonVmOptions(CLI::App& command) {
  auto args = std::make_shared<DaemonVmArgs>();
  command.add_option("name", args->name, "VM name (one strata daemon manages)");
  addConnectionOptions(command, *args);
  if (command.get_name() == "shutdown")
    command.add_option("--timeout", args->timeout, "seconds before the daemon kills the VM (default: the daemon's)");
  return args;
}

bool namesDaemonVm(const DaemonVmArgs& args) { return !args.name.empty(); }

int daemonVmAction(const DaemonVmArgs& given, const std::string& action, bool json) {
  DaemonVmArgs args = given;
  if (json) args.output = "json";
  std::string path = "/vms/" + args.name;
  if (action == "status") return call(args, "status " + args.name, {"GET", path}, printInfo);
  std::string query = action == "shutdown" && args.timeout ? fmt::format("?timeout={}", args.timeout) : "";
  std::string operation = action == "reset" ? "reboot" : action;
  return call(args, action + " " + args.name, {"POST", path + "/" + operation + query}, printVm);
}

int daemonVmOperation(const DaemonConnection& given, const std::string& name, const std::string& action,
                      const json& body, bool asJson) {
  DaemonConnection connection = given;
  if (asJson) connection.output = "json";
  std::string what = fmt::format("vm {} {}", action, name);
  auto started = daemonRequest(connection, what, {"POST", "/vms/" + name + "/" + action, body.dump()});
  if (!started) return 1;
  if (action == "snapshot" && !asJson)
    std::printf("snapshot %s of %s (strata vm clone %s NEW --snapshot %s)\n", cell((*started)["snapshot"]).c_str(),
                name.c_str(), name.c_str(), cell((*started)["snapshot"]).c_str());
  return finishOperation(connection, what, *started, {"GET", "/operations/" + cell((*started)["operation"]["id"])},
                         [](const json& operation) {
                           std::printf("%s %s: %s\n", cell(operation["kind"]).c_str(), cell(operation["target"]).c_str(),
                                       cell(operation["state"]).c_str());
                         });
}

void addDaemonVmCommands(CLI::App& vm, CommandStatus& status) {
  auto common = [](CLI::App* command, DaemonVmArgs& args) {
    addConnectionAndOutputOptions(*command, args);
    return command;
  };

  auto list = std::make_shared<DaemonVmArgs>();
  common(vm.add_subcommand("list", "List the VMs the daemon runs for you"), *list)->callback([list, &status] {
    status.exitCode = call(*list, "list", {"GET", "/vms"}, printTable);
  });

  auto spec = std::make_shared<DaemonVmArgs>();
  auto* define = common(vm.add_subcommand("define", "Define a VM from a JSON spec (docs/api/daemon-api.openapi.json)"), *spec);
  define->add_option("spec", spec->specFile, "spec file, - for standard input")->required();
  define->callback([spec, &status] {
    std::ifstream file(spec->specFile == "-" ? "/dev/stdin" : spec->specFile);
    if (!file) {
      std::fprintf(stderr, "strata vm define: cannot read %s\n", spec->specFile.c_str());
      status.exitCode = 1;
      return;
    }
    std::string body((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    status.exitCode = call(*spec, "define", {"POST", "/vms", body}, printVm);
  });

  // A linked clone of a template, booted at once unless --no-start.
  struct CreateArgs : DaemonVmArgs {
    std::string templateName;
    unsigned cpus = 0;       // 0: the daemon's default (a template snapshot's own)
    uint64_t memoryMib = 0;
    bool noStart = false;
  };
  auto create = std::make_shared<CreateArgs>();
  auto* createCommand = common(vm.add_subcommand("create", "Create a VM as a linked clone of a template and boot it"), *create);
  createCommand->add_option("--template", create->templateName, "template to clone")->required();
  createCommand->add_option("--name", create->name, "the new VM's name")->required();
  createCommand->add_option("--cpus", create->cpus, "vCPUs (default 1, or the template snapshot's)");
  createCommand->add_option("--memory", create->memoryMib, "memory in MiB (default 256, or the template snapshot's)");
  createCommand->add_flag("--no-start", create->noStart, "only define it");
  createCommand->callback([create, &status] {
    json spec{{"name", create->name}, {"template", create->templateName}};
    if (create->cpus > 0) spec["cpus"] = create->cpus;
    if (create->memoryMib > 0) spec["memory_mib"] = create->memoryMib;
    std::string what = "create " + create->name;
    if (create->noStart) {
      status.exitCode = call(*create, what, {"POST", "/vms", spec.dump()}, printVm);
      return;
    }
    if (!daemonRequest(*create, "vm " + what, {"POST", "/vms", spec.dump()})) {
      status.exitCode = 1;
      return;
    }
    status.exitCode = call(*create, what, {"POST", "/vms/" + create->name + "/start"}, printVm);
  });

  struct CloneArgs : DaemonVmArgs {
    std::string cloneName, snapshot;
  };
  auto clone = std::make_shared<CloneArgs>();
  auto* cloneCommand = common(vm.add_subcommand("clone", "Define a VM that resumes one of a VM's snapshots as a clone"), *clone);
  cloneCommand->add_option("name", clone->name, "the VM whose snapshot it is")->required();
  cloneCommand->add_option("new", clone->cloneName, "the new VM's name")->required();
  cloneCommand->add_option("--snapshot", clone->snapshot, "the snapshot's id (strata vm snapshot NAME prints it)")->required();
  cloneCommand->callback([clone, &status] {
    status.exitCode = call(*clone, "clone " + clone->name,
                           {"POST", "/vms/" + clone->name + "/clone",
                            json{{"name", clone->cloneName}, {"snapshot", clone->snapshot}}.dump()},
                           printVm);
  });

  auto consoleArgs = std::make_shared<DaemonVmArgs>();
  auto* console = vm.add_subcommand("console", "Attach this terminal to a VM's serial console (Ctrl-] leaves)");
  addConnectionOptions(*console, *consoleArgs);
  console->add_option("name", consoleArgs->name, "VM name")->required();
  console->callback([consoleArgs, &status] {
    status.exitCode = attachVmConsole(consoleArgs->socket, consoleArgs->token, consoleArgs->name);
  });

  struct Action {
    const char *name, *help, *method, *suffix;
  };
  for (const Action& action : {Action{"start", "Start a defined VM", "POST", "/start"},
                               Action{"destroy", "Kill a running VM at once", "POST", "/destroy"},
                               Action{"delete", "Delete a stopped VM's definition", "DELETE", ""},
                               Action{"info", "Show one VM", "GET", ""}}) {
    auto args = std::make_shared<DaemonVmArgs>();
    auto* command = common(vm.add_subcommand(action.name, action.help), *args);
    command->add_option("name", args->name, "VM name")->required();
    command->callback([args, action, &status] {
      bool showsVmRow = *action.suffix != '\0';
      status.exitCode = call(*args, fmt::format("{} {}", action.name, args->name),
                             {action.method, "/vms/" + args->name + action.suffix}, showsVmRow ? printVm : printInfo);
    });
  }
}

}  // namespace strata::cli
