// `strata vm list|define|start|shutdown|destroy|delete|info NAME`: the VM
// commands that go through the management daemon (`strata daemon`), as a
// table for people or JSON (-o json) for scripts.
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
namespace {

using nlohmann::json;

struct DaemonArgs {
  std::string socket = control::defaultDaemonSocket();
  std::string token;
  std::string output = "table";
  std::string name, specFile;
  unsigned timeout = 0;  // shutdown: 0 = the daemon's default
};

// The `vm` command group; the per-VM API commands may have created it already.
CLI::App* vmCommand(CLI::App& app) {
  for (auto* sub : app.get_subcommands([](CLI::App* candidate) { return candidate->get_name() == "vm"; }))
    return sub;
  auto* vm = app.add_subcommand("vm", "Manage virtual machines");
  vm->require_subcommand(1);
  return vm;
}

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
int call(const DaemonArgs& args, const std::string& what, control::HttpRequest request,
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

}  // namespace

void addDaemonVmCommands(CLI::App& app, CommandStatus& status) {
  auto* vm = vmCommand(app);
  auto args = std::make_shared<DaemonArgs>();
  auto common = [args](CLI::App* command) {
    command->add_option("--daemon", args->socket, "the daemon's socket")->capture_default_str();
    command->add_option("--token", args->token, "bearer token (default: $STRATA_TOKEN)");
    command->add_option("-o,--output", args->output, "table or json")->check(CLI::IsMember({"table", "json"}));
    return command;
  };
  auto withToken = [args] {
    if (const char* token = std::getenv("STRATA_TOKEN"); args->token.empty() && token) args->token = token;
  };

  common(vm->add_subcommand("list", "List the VMs the daemon runs for you"))->callback([args, withToken, &status] {
    withToken();
    status.exitCode = call(*args, "list", {"GET", "/vms"}, printTable);
  });

  auto* define = common(vm->add_subcommand("define", "Define a VM from a JSON spec (see docs/api/daemon-api.openapi.json)"));
  define->add_option("spec", args->specFile, "spec file, - for standard input")->required();
  define->callback([args, withToken, &status] {
    withToken();
    std::ifstream file(args->specFile == "-" ? "/dev/stdin" : args->specFile);
    if (!file) {
      std::fprintf(stderr, "strata vm define: cannot read %s\n", args->specFile.c_str());
      status.exitCode = 1;
      return;
    }
    std::string spec((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    status.exitCode = call(*args, "define", {"POST", "/vms", spec}, printVm);
  });

  struct Action {
    const char *name, *help, *method, *suffix;
  };
  for (const Action& action : {Action{"start", "Start a defined VM", "POST", "/start"},
                               Action{"destroy", "Kill a running VM at once", "POST", "/destroy"},
                               Action{"delete", "Delete a stopped VM's definition", "DELETE", ""},
                               Action{"info", "Show one VM", "GET", ""}}) {
    auto* command = common(vm->add_subcommand(action.name, action.help));
    command->add_option("name", args->name, "VM name")->required();
    command->callback([args, withToken, action, &status] {
      withToken();
      bool showsVmRow = *action.suffix != '\0';
      status.exitCode = call(*args, fmt::format("{} {}", action.name, args->name),
                             {action.method, "/vms/" + args->name + action.suffix}, showsVmRow ? printVm : printInfo);
    });
  }

  auto* shutdown = common(vm->add_subcommand("shutdown", "Shut a VM down (graceful, killed after --timeout)"));
  shutdown->add_option("name", args->name, "VM name")->required();
  shutdown->add_option("--timeout", args->timeout, "seconds before the VM is killed (default: the daemon's)");
  shutdown->callback([args, withToken, &status] {
    withToken();
    std::string query = args->timeout ? fmt::format("?timeout={}", args->timeout) : "";
    status.exitCode = call(*args, "shutdown " + args->name, {"POST", "/vms/" + args->name + "/shutdown" + query}, printVm);
  });
}

}  // namespace strata::cli
