#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace strata::log {
namespace {
std::atomic<Level> g_level{Level::Warn};
std::mutex g_mutex;
const char* levelName(Level level) {
  switch (level) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warning";
    case Level::Error: return "error";
  }
  return "?";
}
}  // namespace

void setLevel(Level level) { g_level = level; }
bool enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view message) {
  std::lock_guard lock(g_mutex);
  // \r first: the console may be in raw mode, where \n alone does not return the carriage.
  std::fprintf(stderr, "\rstrata: %s: %.*s\r\n", levelName(level), static_cast<int>(message.size()),
               message.data());
}

}  // namespace strata::log
