// `strata network define|list|info|delete`: the daemon's networks, each a VLAN
// on the host switch it runs; a VM joins one with "nets": ["network=NAME"].
#include <cstdio>

#include "commands.h"
#include "daemon_client.h"

namespace strata::cli {
namespace {

using nlohmann::json;

struct NetworkArgs : DaemonConnection {
  std::string name, tenant;
  unsigned vlan = 0;
};

void printNetworks(const json& networks) {
  std::printf("%-24s %-16s %5s\n", "NAME", "TENANT", "VLAN");
  for (const auto& network : networks)
    std::printf("%-24s %-16s %5s\n", cell(network["name"]).c_str(), cell(network["tenant"]).c_str(),
                cell(network["vlan"]).c_str());
}

void printNetwork(const json& network) {
  printNetworks(json::array({network}));
  if (!network.contains("ports")) return;
  std::printf("\nswitch %s\n%-24s %-18s %12s %12s\n", cell(network["switch"]).c_str(), "VM", "MAC", "RX_BYTES", "TX_BYTES");
  for (const auto& port : network["ports"])
    std::printf("%-24s %-18s %12s %12s\n", cell(port["vm"]).c_str(), cell(port["mac"]).c_str(),
                cell(port["rx_bytes"]).c_str(), cell(port["tx_bytes"]).c_str());
}

CLI::App* command(CLI::App& group, const char* name, const char* help, NetworkArgs& args, bool named) {
  auto* added = group.add_subcommand(name, help);
  addConnectionAndOutputOptions(*added, args);
  if (named) added->add_option("name", args.name, "network name")->required();
  return added;
}

}  // namespace

void addNetworkCommands(CLI::App& app, CommandStatus& status) {
  auto* group = app.add_subcommand("network", "networks: VLANs on the host switch of strata daemon");
  group->require_subcommand(1);
  auto define = std::make_shared<NetworkArgs>();
  auto* defineCommand = command(*group, "define", "define a network (counted in your network quota)", *define, true);
  defineCommand->add_option("--tenant", define->tenant, "owner (admin only)");
  defineCommand->add_option("--vlan", define->vlan, "its VLAN (admin only; default: the lowest free one from 100)");
  defineCommand->callback([define, &status] {
    json body{{"name", define->name}};
    if (!define->tenant.empty()) body["tenant"] = define->tenant;
    if (define->vlan > 0) body["vlan"] = define->vlan;
    status.exitCode = daemonCall(*define, "network define " + define->name, {"POST", "/networks", body.dump()},
                                 printNetwork);
  });
  auto list = std::make_shared<NetworkArgs>();
  command(*group, "list", "list your networks", *list, false)->callback([list, &status] {
    status.exitCode = daemonCall(*list, "network list", {"GET", "/networks"}, printNetworks);
  });
  auto info = std::make_shared<NetworkArgs>();
  command(*group, "info", "show a network, its VMs' ports and their byte counters", *info, true)
      ->callback([info, &status] {
        status.exitCode = daemonCall(*info, "network info " + info->name, {"GET", "/networks/" + info->name}, printNetwork);
      });
  auto remove = std::make_shared<NetworkArgs>();
  command(*group, "delete", "delete a network no VM attaches to", *remove, true)->callback([remove, &status] {
    status.exitCode = daemonCall(*remove, "network delete " + remove->name, {"DELETE", "/networks/" + remove->name},
                                 [](const json& reply) { std::printf("deleted %s\n", cell(reply["deleted"]).c_str()); });
  });
}

}  // namespace strata::cli
