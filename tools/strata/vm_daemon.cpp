// `strata vm list|define|start|destroy|delete|info|console NAME`: the VM commands that
// go through the management daemon (`strata daemon`), as a table for people or
// JSON (-o json) for scripts; and the daemon side of vm.cpp's
// status|pause|resume|shutdown|reset when they are given a NAME.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "control/daemon.h"
#include "control/http_client.h"

namespace strata::cli {

struct DaemonVmArgs {
  std::string socket = control::defaultDaemonSocket();
  std::string token;
  std::string output = "table";
  std::string name, specFile;
  unsigned timeout = 0;  // shutdown: 0 = the daemon's default
};

namespace {

using nlohmann::json;

std::string cell(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

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

// Sends one request; prints the answer, or says what went wrong with the HTTP status.
int call(const DaemonVmArgs& args, const std::string& what, control::HttpRequest request,
         void (*printForPeople)(const json&)) {
  request.bearerToken = args.token;
  request.timeout = std::chrono::minutes(10);  // a shutdown waits for the guest
  auto reply = control::httpOverUnixSocket(args.socket, request);
  if (!reply) {
    std::fprintf(stderr, "strata vm %s: cannot reach the daemon: %s\n", what.c_str(), reply.error().message.c_str());
    return 1;
  }
  json body = json::parse(reply->body, nullptr, false);
  if (reply->status >= 300) {
    std::string message = body.is_object() && body.contains("error") ? cell(body["error"]) : reply->body;
    std::fprintf(stderr, "strata vm %s: HTTP %d: %s\n", what.c_str(), reply->status, message.c_str());
    return 1;
  }
  if (args.output == "json" || body.is_discarded()) std::printf("%s\n", body.is_discarded() ? reply->body.c_str() : body.dump(2).c_str());
  else printForPeople(body);
  return 0;
}

void printVm(const json& vm) { printTable(json::array({vm})); }

// --daemon and --token, with the token from $STRATA_TOKEN when not given.
void addConnectionOptions(CLI::App& command, DaemonVmArgs& args) {
  command.add_option("--daemon", args.socket, "the daemon's socket ($STRATA_RUN_DIR/daemon.sock)")
      ->capture_default_str();
  command.add_option("--token", args.token, "bearer token (default: $STRATA_TOKEN)");
  command.parse_complete_callback([&args] {
    if (const char* token = std::getenv("STRATA_TOKEN"); args.token.empty() && token) args.token = token;
  });
}

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

void addDaemonVmCommands(CLI::App& vm, CommandStatus& status) {
  auto common = [](CLI::App* command, DaemonVmArgs& args) {
    addConnectionOptions(*command, args);
    command->add_option("-o,--output", args.output, "table or json")->check(CLI::IsMember({"table", "json"}));
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
