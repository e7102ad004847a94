// strata: the command line of the strata virtualization stack.
#include <cstring>
#include <initializer_list>

#include "commands.h"

namespace {

// A command group and the top-level subcommands it adds.
struct CommandGroup {
  std::initializer_list<const char*> names;
  void (*add)(CLI::App& app, strata::cli::CommandStatus& status);
};

const CommandGroup kGroups[] = {
    {{"run"}, strata::cli::addRunCommand},
    {{"image"}, strata::cli::addImageCommands},
    {{"pool"},
     [](CLI::App& app, strata::cli::CommandStatus& status) {
       strata::cli::addPoolCommands(app, status);
       strata::cli::addDaemonPoolCommands(*app.get_subcommand("pool"), status);
     }},
    {{"volume"}, strata::cli::addVolumeCommands},
    {{"nbd"}, strata::cli::addNbdCommands},
    {{"switch"}, strata::cli::addSwitchCommands},
    {{"vm"},
     [](CLI::App& app, strata::cli::CommandStatus& status) {
       strata::cli::addDaemonVmCommands(*strata::cli::addVmCommands(app, status), status);
     }},
    {{"daemon"}, strata::cli::addDaemonCommand},
    {{"template"}, strata::cli::addTemplateCommands},
    {{"tenant", "usage"}, strata::cli::addTenantCommands},
    {{"network"}, strata::cli::addNetworkCommands},
};

bool names(const CommandGroup& group, const char* word) {
  for (const char* name : group.names)
    if (std::strcmp(name, word) == 0) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata: run virtual machines, manage virtual disks, pools and switches"};
  app.require_subcommand(1);
  strata::cli::CommandStatus status;
  status.args.assign(argv + 1, argv + argc);
  // Only the group the command names is built: all of them cost a starting VM
  // (`strata run`) ~7 ms of allocations. Help and mistakes see every group.
  const CommandGroup* named = nullptr;
  for (const auto& group : kGroups)
    if (argc > 1 && names(group, argv[1])) named = &group;
  for (const auto& group : kGroups)
    if (!named || named == &group) group.add(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return status.exitCode;
}
