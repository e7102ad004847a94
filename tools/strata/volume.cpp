#include "commands.h"

namespace strata::cli {

// Placeholder until the storage work lands `strata volume`: registers nothing.
void addVolumeCommands(CLI::App&, CommandStatus&) {}

}  // namespace strata::cli
