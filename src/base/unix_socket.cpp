#include "base/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>

#include <fmt/core.h>

namespace strata {
namespace {

// Whether a process accepts connections of this type on the socket file at `address`.
bool someoneServes(const sockaddr_un& address, int type) {
  UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return false;
  return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

}  // namespace

Result<UniqueFd> bindUnixSocket(const std::string& path, int type, const std::string& what) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path)
    return Error{fmt::format("{} {}: the path must be 1 to {} bytes", what, path, sizeof address.sun_path - 1)};
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) return Error{fmt::format("{} {}: exists and is not a socket", what, path)};
    if (someoneServes(address, type)) return Error{fmt::format("{} {}: another process is serving on it", what, path)};
    if (::unlink(path.c_str()) != 0) return errnoError(fmt::format("{} {}: removing the stale socket", what, path));
  }
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket(AF_UNIX)");
  mode_t previous = ::umask(0177);  // the file is created 0600
  int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  int bindErrno = errno;
  ::umask(previous);
  if (bound != 0) return errnoError(fmt::format("{} {}", what, path), bindErrno);
  if (::listen(fd.get(), 64) != 0) return errnoError(fmt::format("{} {}: listen", what, path));
  return fd;
}

}  // namespace strata
