// `strata tenant list|create|info|token|quota` and `strata usage`: tenants,
// their tokens and quotas, and what their VMs used, through the daemon; a
// table for people, -o json (and csv for usage) for scripts.
#include <cstdio>

#include <fmt/core.h>

#include "commands.h"
#include "daemon_client.h"

namespace strata::cli {
namespace {

using nlohmann::json;

struct TenantArgs : DaemonConnection {
  std::string name;
  std::optional<uint64_t> vms, vcpus, memoryMib, diskGib, networks;
  std::string from, to;
};

std::string limitText(const json& limit) { return limit.is_null() ? "-" : cell(limit); }

void printTenants(const json& tenants) {
  std::printf("%-24s %-11s %-11s %-15s %-11s %-11s\n", "NAME", "VMS", "VCPUS", "MEMORY_MIB", "DISK_GIB", "NETWORKS");
  for (const auto& tenant : tenants) {
    auto usedOf = [&](const char* key) {
      return fmt::format("{}/{}", cell(tenant["used"][key]), limitText(tenant["quota"][key]));
    };
    std::printf("%-24s %-11s %-11s %-15s %-11s %-11s\n", cell(tenant["name"]).c_str(), usedOf("vms").c_str(),
                usedOf("vcpus").c_str(), usedOf("memory_mib").c_str(), usedOf("disk_gib").c_str(),
                usedOf("networks").c_str());
  }
}

void printTenant(const json& tenant) { printTenants(json::array({tenant})); }

void printUsage(const json& records) {
  fmt::print("{:<24} {:<16} {:>12} {:>16} {:>14} {:>14} {:>14}\n", "VM", "TENANT", "VCPU_SECONDS", "MEMORY_GIB_HOURS",
             "DISK_GIB_HOURS", "RX_BYTES", "TX_BYTES");
  for (const auto& record : records)
    fmt::print("{:<24} {:<16} {:>12.1f} {:>16.4f} {:>14.4f} {:>14} {:>14}\n", cell(record["vm"]),
               cell(record["tenant"]), record.value("vcpu_seconds", 0.0), record.value("memory_gib_hours", 0.0),
               record.value("disk_gib_hours", 0.0), record.value("rx_bytes", uint64_t{0}),
               record.value("tx_bytes", uint64_t{0}));
}

CLI::App* tenantCommand(CLI::App& group, const char* name, const char* help, TenantArgs& args, bool named) {
  auto* command = group.add_subcommand(name, help);
  addConnectionAndOutputOptions(*command, args);
  if (named) command->add_option("name", args.name, "tenant name")->required();
  return command;
}

}  // namespace

void addTenantCommands(CLI::App& app, CommandStatus& status) {
  auto* group = app.add_subcommand("tenant", "tenants, their tokens and quotas (through strata daemon)");
  group->require_subcommand(1);

  auto list = std::make_shared<TenantArgs>();
  tenantCommand(*group, "list", "list tenants with use/quota", *list, false)->callback([list, &status] {
    status.exitCode = daemonCall(*list, "tenant list", {"GET", "/tenants"}, printTenants);
  });
  auto create = std::make_shared<TenantArgs>();
  tenantCommand(*group, "create", "add a tenant (admin)", *create, true)->callback([create, &status] {
    status.exitCode = daemonCall(*create, "tenant create " + create->name,
                                 {"POST", "/tenants", json{{"name", create->name}}.dump()}, printTenant);
  });
  auto info = std::make_shared<TenantArgs>();
  tenantCommand(*group, "info", "show one tenant", *info, true)->callback([info, &status] {
    status.exitCode = daemonCall(*info, "tenant info " + info->name, {"GET", "/tenants/" + info->name}, printTenant);
  });
  auto token = std::make_shared<TenantArgs>();
  tenantCommand(*group, "token", "make a new token for a tenant (admin); shown once", *token, true)
      ->callback([token, &status] {
        status.exitCode = daemonCall(*token, "tenant token " + token->name,
                                     {"POST", "/tenants/" + token->name + "/tokens"},
                                     [](const json& reply) { std::printf("%s\n", cell(reply["token"]).c_str()); });
      });
  auto quota = std::make_shared<TenantArgs>();
  auto* quotaCommand = tenantCommand(*group, "quota", "set a tenant's limits (admin); a limit not given is unlimited",
                                     *quota, true);
  quotaCommand->add_option("--vms", quota->vms, "VMs");
  quotaCommand->add_option("--vcpus", quota->vcpus, "vCPUs, summed over its VMs");
  quotaCommand->add_option("--memory-mib", quota->memoryMib, "memory in MiB, summed");
  quotaCommand->add_option("--disk-gib", quota->diskGib, "disk in GiB: its VMs' disks, its templates and volumes");
  quotaCommand->add_option("--networks", quota->networks, "networks");
  quotaCommand->callback([quota, &status] {
    auto limit = [](const std::optional<uint64_t>& value) { return value ? json(*value) : json(nullptr); };
    json body{{"vms", limit(quota->vms)},
              {"vcpus", limit(quota->vcpus)},
              {"memory_mib", limit(quota->memoryMib)},
              {"disk_gib", limit(quota->diskGib)},
              {"networks", limit(quota->networks)}};
    status.exitCode = daemonCall(*quota, "tenant quota " + quota->name,
                                 {"PUT", "/tenants/" + quota->name + "/quota", body.dump()}, printTenant);
  });

  auto usage = std::make_shared<TenantArgs>();
  auto* usageCommand = app.add_subcommand("usage", "what the VMs used (yours, or everyone's for an admin), per VM");
  addConnectionOptions(*usageCommand, *usage);
  usageCommand->add_option("-o,--output", usage->output, "table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}));
  usageCommand->add_option("--from", usage->from, "UNIX seconds (default: the beginning)");
  usageCommand->add_option("--to", usage->to, "UNIX seconds (default: now)");
  usageCommand->callback([usage, &status] {
    std::string query = usage->output == "csv" ? "?format=csv" : "?format=json";
    if (!usage->from.empty()) query += "&from=" + usage->from;
    if (!usage->to.empty()) query += "&to=" + usage->to;
    status.exitCode = daemonCall(*usage, "usage", {"GET", "/usage" + query}, printUsage);
  });
}

}  // namespace strata::cli
