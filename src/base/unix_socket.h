// bindUnixSocket: a listening UNIX socket at a path, made 0600 (only its owner
// connects), taking over a stale socket file a dead process left but never one
// a live process still serves. sendWithDescriptors: one message that carries
// open descriptors along (SCM_RIGHTS).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata {

// type: SOCK_STREAM or SOCK_SEQPACKET; what: how errors name the path ("--api-socket").
Result<UniqueFd> bindUnixSocket(const std::string& path, int type, const std::string& what);

// Sends `payload` as one message on a connected UNIX socket, with copies of `fds` (none if empty).
Result<void> sendWithDescriptors(int socket, std::string_view payload, std::span<const int> fds);

}  // namespace strata
