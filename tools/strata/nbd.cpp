#include "commands.h"

namespace strata::cli {

// Placeholder until the storage work lands `strata nbd`: registers nothing.
void addNbdCommands(CLI::App&, CommandStatus&) {}

}  // namespace strata::cli
