#include "commands.h"

namespace strata::cli {

void addRunCommand(CLI::App& app, CommandStatus& status) {
  auto* run = app.add_subcommand("run", "Boot a virtual machine");
  run->callback([&status] { status.exitCode = 1; });
}

}  // namespace strata::cli
