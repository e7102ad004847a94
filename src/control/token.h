// Bearer tokens: random secrets handed out once; the daemon keeps only their
// SHA-256, so a copy of its database grants no access.
#pragma once

#include <string>

#include "base/result.h"

namespace strata::control {

Result<std::string> newToken();  // "strata_" + 64 hex digits from the system's CSPRNG
std::string tokenHash(const std::string& token);  // hex SHA-256

}  // namespace strata::control
