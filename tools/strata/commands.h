// The `strata` command groups. Each group lives in its own file and adds its
// subcommands to the application; main.cpp only wires them together.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json_fwd.hpp>

namespace strata::cli {

// Every command reports its outcome through this exit status.
struct CommandStatus {
  int exitCode = 0;
  std::vector<std::string> args;  // the command line after the program's name, as given
};

void addRunCommand(CLI::App& app, CommandStatus& status);    // run.cpp
void addImageCommands(CLI::App& app, CommandStatus& status);  // image.cpp
void addPoolCommands(CLI::App& app, CommandStatus& status);   // pool.cpp: strata pool ...
void addVolumeCommands(CLI::App& app, CommandStatus& status); // volume.cpp: strata volume ...
void addNbdCommands(CLI::App& app, CommandStatus& status);    // nbd.cpp: strata nbd ...
void addSwitchCommands(CLI::App& app, CommandStatus& status); // switch.cpp: strata switch ...
// vm.cpp: strata vm status|pause|resume|shutdown|reset --api-socket PATH (or NAME,
// through the daemon). Returns the `vm` group, so other ways of naming a VM can
// add their subcommands to it.
CLI::App* addVmCommands(CLI::App& app, CommandStatus& status);
void addDaemonCommand(CLI::App& app, CommandStatus& status);  // daemon.cpp: strata daemon
void addTemplateCommands(CLI::App& app, CommandStatus& status);  // template.cpp: strata template ...
void addTenantCommands(CLI::App& app, CommandStatus& status);    // tenant.cpp: strata tenant ..., strata usage
// pool_daemon.cpp: strata pool define|list|info and strata pool volume ..., through the daemon.
void addDaemonPoolCommands(CLI::App& pool, CommandStatus& status);
void addNetworkCommands(CLI::App& app, CommandStatus& status);   // network.cpp: strata network ...

// vm_daemon.cpp: strata vm list|define|create|start|destroy|delete|info NAME, through the daemon.
void addDaemonVmCommands(CLI::App& vm, CommandStatus& status);
// The NAME, --daemon and --token of a `strata vm` command that names a VM the daemon manages.
struct DaemonVmArgs;
std::shared_ptr<DaemonVmArgs> addDaemonVmOptions(CLI::App& command);
bool namesDaemonVm(const DaemonVmArgs& args);
// Runs status|pause|resume|shutdown|reset on that VM through the daemon; the exit status.
int daemonVmAction(const DaemonVmArgs& args, const std::string& action, bool json);
// POST /vms/NAME/ACTION with body (snapshot, migrate: long operations) and follows the operation; the exit status.
struct DaemonConnection;
int daemonVmOperation(const DaemonConnection& connection, const std::string& name, const std::string& action,
                      const nlohmann::json& body, bool json);
// vm_console.cpp: strata vm console NAME; the exit status.
int attachVmConsole(const std::string& daemonSocket, const std::string& token, const std::string& name);

}  // namespace strata::cli
