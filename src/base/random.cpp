#include "base/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

namespace strata {

size_t fillRandom(void* data, size_t size) {
  auto* bytes = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t got = ::getrandom(bytes + done, size - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      break;
    }
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace strata
