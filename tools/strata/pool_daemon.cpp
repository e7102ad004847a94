// `strata pool define|list|info` and `strata pool volume create|list|info|
// resize|snapshot|delete`: the daemon's pools and its tenants' volumes (VMs
// name them as disks: {"volume": NAME}). The other `strata pool` and `strata
// volume` commands work on the PVs directly, without a daemon.
#include <cstdio>
#include <filesystem>

#include <fmt/core.h>

#include "commands.h"
#include "daemon_client.h"

namespace strata::cli {
namespace {

using nlohmann::json;

struct PoolArgs : DaemonConnection {
  std::string name, pool, type, tenant, snapshot;
  std::vector<std::string> pvs;
  uint64_t thinMib = 0, sizeMib = 0;
  bool force = false;
};

void printPools(const json& pools) {
  std::printf("%-24s %10s %10s %s\n", "NAME", "THIN_MIB", "FREE_MIB", "PVS");
  for (const auto& pool : pools) {
    std::string pvs;
    for (const auto& pv : pool.value("pvs", json::array())) pvs += (pvs.empty() ? "" : ",") + cell(pv);
    std::printf("%-24s %10s %10s %s\n", cell(pool["name"]).c_str(), cell(pool["thin_mib"]).c_str(),
                pool.contains("free_mib") ? cell(pool["free_mib"]).c_str() : "-", pvs.c_str());
  }
}

void printPool(const json& pool) { printPools(json::array({pool})); }

void printVolumes(const json& volumes) {
  std::printf("%-24s %-16s %-16s %-7s %10s %-9s %s\n", "NAME", "TENANT", "POOL", "TYPE", "SIZE_MIB", "STATE", "ORIGIN");
  for (const auto& volume : volumes)
    std::printf("%-24s %-16s %-16s %-7s %10s %-9s %s\n", cell(volume["name"]).c_str(), cell(volume["tenant"]).c_str(),
                cell(volume["pool"]).c_str(), cell(volume["type"]).c_str(), cell(volume["size_mib"]).c_str(),
                cell(volume["state"]).c_str(), volume.contains("origin") ? cell(volume["origin"]).c_str() : "-");
}

void printVolume(const json& volume) { printVolumes(json::array({volume})); }

void printDeleted(const json& reply) { std::printf("deleted %s\n", cell(reply["deleted"]).c_str()); }

CLI::App* command(CLI::App& group, const char* name, const char* help, PoolArgs& args, const char* named) {
  auto* added = group.add_subcommand(name, help);
  addConnectionAndOutputOptions(*added, args);
  if (named) added->add_option("name", args.name, named)->required();
  return added;
}

void addDaemonVolumeCommands(CLI::App& group, CommandStatus& status) {
  auto create = std::make_shared<PoolArgs>();
  auto* createCommand = command(group, "create", "create a volume in a pool (counted in your disk quota)", *create,
                                "volume name");
  createCommand->add_option("--pool", create->pool, "pool to carve it from")->required();
  createCommand->add_option("--size-mib", create->sizeMib, "size in MiB")->required();
  createCommand->add_option("--type", create->type, "linear, striped, mirror, raid5, raid10 or thin "
                                                    "(default: thin if the pool has a thin pool)");
  createCommand->add_option("--tenant", create->tenant, "owner (admin only)");
  createCommand->callback([create, &status] {
    json body{{"name", create->name}, {"pool", create->pool}, {"size_mib", create->sizeMib}};
    if (!create->type.empty()) body["type"] = create->type;
    if (!create->tenant.empty()) body["tenant"] = create->tenant;
    status.exitCode = daemonCall(*create, "pool volume create " + create->name, {"POST", "/volumes", body.dump()},
                                 printVolume);
  });
  auto list = std::make_shared<PoolArgs>();
  command(group, "list", "list your volumes", *list, nullptr)->callback([list, &status] {
    status.exitCode = daemonCall(*list, "pool volume list", {"GET", "/volumes"}, printVolumes);
  });
  auto info = std::make_shared<PoolArgs>();
  command(group, "info", "show one volume", *info, "volume name")->callback([info, &status] {
    status.exitCode = daemonCall(*info, "pool volume info " + info->name, {"GET", "/volumes/" + info->name}, printVolume);
  });
  auto resize = std::make_shared<PoolArgs>();
  auto* resizeCommand = command(group, "resize", "grow a volume", *resize, "volume name");
  resizeCommand->add_option("--size-mib", resize->sizeMib, "new size in MiB")->required();
  resizeCommand->callback([resize, &status] {
    status.exitCode = daemonCall(*resize, "pool volume resize " + resize->name,
                                 {"POST", "/volumes/" + resize->name + "/resize", json{{"size_mib", resize->sizeMib}}.dump()},
                                 printVolume);
  });
  auto snapshot = std::make_shared<PoolArgs>();
  auto* snapshotCommand = command(group, "snapshot", "take a read-only snapshot of a thin volume", *snapshot, "volume name");
  snapshotCommand->add_option("snapshot", snapshot->snapshot, "the snapshot's name")->required();
  snapshotCommand->callback([snapshot, &status] {
    status.exitCode = daemonCall(*snapshot, "pool volume snapshot " + snapshot->name,
                                 {"POST", "/volumes/" + snapshot->name + "/snapshot", json{{"name", snapshot->snapshot}}.dump()},
                                 printVolume);
  });
  auto remove = std::make_shared<PoolArgs>();
  command(group, "delete", "delete a volume no VM uses", *remove, "volume name")->callback([remove, &status] {
    status.exitCode = daemonCall(*remove, "pool volume delete " + remove->name, {"DELETE", "/volumes/" + remove->name},
                                 printDeleted);
  });
}

}  // namespace

void addDaemonPoolCommands(CLI::App& pool, CommandStatus& status) {
  auto define = std::make_shared<PoolArgs>();
  auto* defineCommand = command(pool, "define", "give strata daemon a pool on files or block devices (admin; "
                                                "labels them, their data is lost)", *define, "pool name");
  defineCommand->add_option("pvs", define->pvs, "files or block devices")->required();
  defineCommand->add_option("--thin-mib", define->thinMib, "carve a thin pool of this size for thin volumes");
  defineCommand->add_flag("--force", define->force, "relabel PVs of another pool");
  defineCommand->callback([define, &status] {
    json pvs = json::array();
    for (const auto& pv : define->pvs) pvs.push_back(std::filesystem::absolute(pv).lexically_normal().string());
    json body{{"name", define->name}, {"pvs", pvs}};
    if (define->thinMib > 0) body["thin_mib"] = define->thinMib;
    if (define->force) body["force"] = true;
    status.exitCode = daemonCall(*define, "pool define " + define->name, {"POST", "/pools", body.dump()}, printPool);
  });
  auto list = std::make_shared<PoolArgs>();
  command(pool, "list", "list the daemon's pools", *list, nullptr)->callback([list, &status] {
    status.exitCode = daemonCall(*list, "pool list", {"GET", "/pools"}, printPools);
  });
  auto info = std::make_shared<PoolArgs>();
  command(pool, "info", "show one of the daemon's pools with its free space", *info, "pool name")
      ->callback([info, &status] {
        status.exitCode = daemonCall(*info, "pool info " + info->name, {"GET", "/pools/" + info->name}, printPool);
      });
  auto* volumes = pool.add_subcommand("volume", "volumes in the daemon's pools (through strata daemon)");
  volumes->require_subcommand(1);
  addDaemonVolumeCommands(*volumes, status);
}

}  // namespace strata::cli
