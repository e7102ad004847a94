// Modules: parts of strata built as shared objects beside the strata executable
// and loaded on first use, so that a process that never needs their libraries
// does not load and relocate them as it starts (bench/README.md). Each unit of
// a module provides its entry points as it loads (an `Entry` the executable
// defines); `Entry::get()` loads the module the first time one is needed. Tests
// link a module's units in, so their entries are set at start. The modules:
// HTTP (base/http_module.h) and TLS (storage/tls_module.h).
#pragma once

#include <atomic>
#include <string>

#include "base/result.h"

namespace strata::module {

// dlopen()s FILE_NAME (found beside /proc/self/exe, else in the build directory)
// with its libraries; never unloaded. The error names the module (`what`) and
// says what is missing. Callers load each module once.
Result<void> open(const char* fileName, const char* what);

// One function of a module, set by its unit as the module loads.
template <typename Function>
class Entry {
 public:
  // load: the module's loader (once per process, thread-safe); module: its name in errors.
  constexpr Entry(const char* name, Result<void> (*load)(), const char* module)
      : name_(name), load_(load), module_(module) {}

  void provide(Function* function) { function_.store(function, std::memory_order_release); }
  // The function, loading the module first if need be.
  Result<Function*> get() {
    if (Function* function = function_.load(std::memory_order_acquire)) return function;
    if (auto loaded = load_(); !loaded) return loaded.error();
    if (Function* function = function_.load(std::memory_order_acquire)) return function;
    return Error{std::string(module_) + " provides no " + name_};
  }

 private:
  const char* name_;
  Result<void> (*load_)();
  const char* module_;
  std::atomic<Function*> function_{nullptr};
};

}  // namespace strata::module
