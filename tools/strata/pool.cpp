#include "commands.h"

namespace strata::cli {

// Placeholder until the storage work lands `strata pool`: registers nothing.
void addPoolCommands(CLI::App&, CommandStatus&) {}

}  // namespace strata::cli
