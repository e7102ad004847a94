#include "commands.h"

namespace strata::cli {

// Placeholder until the storage work lands `strata image`: registers nothing.
void addImageCommands(CLI::App&, CommandStatus&) {}

}  // namespace strata::cli
