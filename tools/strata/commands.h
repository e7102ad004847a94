// The `strata` command groups. Each group lives in its own file and adds its
// subcommands to the application; main.cpp only wires them together.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

// Every command reports its outcome through this exit status.
struct CommandStatus {
  int exitCode = 0;
};

void addRunCommand(CLI::App& app, CommandStatus& status);    // run.cpp
void addImageCommands(CLI::App& app, CommandStatus& status);  // image.cpp
void addPoolCommands(CLI::App& app, CommandStatus& status);   // pool.cpp: strata pool ...
void addVolumeCommands(CLI::App& app, CommandStatus& status); // volume.cpp: strata volume ...
void addNbdCommands(CLI::App& app, CommandStatus& status);    // nbd.cpp: strata nbd ...
void addSwitchCommands(CLI::App& app, CommandStatus& status); // switch.cpp: strata switch ...
// vm.cpp: strata vm status|pause|resume|shutdown|reset --api-socket PATH. Returns
// the `vm` group, so other ways of naming a VM can add their subcommands to it.
CLI::App* addVmCommands(CLI::App& app, CommandStatus& status);

}  // namespace strata::cli
