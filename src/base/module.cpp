#include "base/module.h"

#include <dlfcn.h>
#include <unistd.h>

#include <fmt/core.h>

namespace strata::module {
namespace {

// Beside the running executable (where the build and an install put it), else in the
// build directory (an executable copied elsewhere).
std::string modulePath(const char* fileName) {
  char self[4096];
  ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length > 0) {
    std::string path(self, static_cast<size_t>(length));
    path = path.substr(0, path.rfind('/') + 1) + fileName;
    if (::access(path.c_str(), R_OK) == 0) return path;
  }
  return std::string(STRATA_BUILD_DIR "/") + fileName;
}

}  // namespace

Result<void> open(const char* fileName, const char* what) {
  std::string path = modulePath(fileName);
  // Never unloaded: its units' entry points stay set for the process's life.
  if (::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr)
    return Error{fmt::format("cannot load {}: {}", what, ::dlerror())};
  return {};
}

}  // namespace strata::module
