// The HTTP module: the units that call cpp-httplib (a VM's API socket, the
// daemon's REST API, the HTTP client of the daemon and the CLI) are built into
// strata-http.so beside the strata executable, not into it. Debian builds
// cpp-httplib with OpenSSL and brotli, and loading those libraries cost every
// VM process ~150 page faults of relocations as it started, although only
// `--api-socket`, the daemon and `strata vm` speak HTTP (bench/README.md).
// Each unit of the module provides its entry points as it loads (an `Entry`
// the executable defines); `get()` loads the module the first time one is
// needed. Tests link the module's units in, so their entries are set at start.
#pragma once

#include <atomic>

#include "base/result.h"

namespace strata::http_module {

// Loads strata-http.so once (found beside /proc/self/exe, else in the build
// directory) with its libraries; thread-safe. The error says what is missing.
Result<void> load();

// One function of the module, set by its unit as the module loads.
template <typename Function>
class Entry {
 public:
  explicit constexpr Entry(const char* name) : name_(name) {}

  void provide(Function* function) { function_.store(function, std::memory_order_release); }
  // The function, loading the module first if need be.
  Result<Function*> get() {
    if (Function* function = function_.load(std::memory_order_acquire)) return function;
    if (auto loaded = load(); !loaded) return loaded.error();
    if (Function* function = function_.load(std::memory_order_acquire)) return function;
    return Error{std::string("the HTTP module provides no ") + name_};
  }

 private:
  const char* name_;
  std::atomic<Function*> function_{nullptr};
};

}  // namespace strata::http_module
