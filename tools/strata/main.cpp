// strata: the command line of the strata virtualization stack.
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: run virtual machines, manage virtual disks, pools and switches"};
  app.require_subcommand(1);
  strata::cli::CommandStatus status;
  strata::cli::addRunCommand(app, status);
  strata::cli::addImageCommands(app, status);
  strata::cli::addPoolCommands(app, status);
  strata::cli::addVolumeCommands(app, status);
  strata::cli::addNbdCommands(app, status);
  strata::cli::addSwitchCommands(app, status);
  strata::cli::addDaemonVmCommands(*strata::cli::addVmCommands(app, status), status);
  strata::cli::addDaemonCommand(app, status);
  strata::cli::addTemplateCommands(app, status);
  strata::cli::addTenantCommands(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return status.exitCode;
}
