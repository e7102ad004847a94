// bindUnixSocket: a listening UNIX socket at a path, made 0600 (only its owner
// connects), taking over a stale socket file a dead process left but never one
// a live process still serves.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata {

// type: SOCK_STREAM or SOCK_SEQPACKET; what: how errors name the path ("--api-socket").
Result<UniqueFd> bindUnixSocket(const std::string& path, int type, const std::string& what);

}  // namespace strata
