#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

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

RateLimiter::Decision RateLimiter::admit(Clock::time_point now) {
  if (!started_ || now - windowStart_ >= interval_) {
    started_ = true;
    windowStart_ = now;
    inWindow_ = 0;
  }
  if (inWindow_ >= burst_) {
    ++suppressed_;
    return {};
  }
  ++inWindow_;
  return {true, std::exchange(suppressed_, 0)};
}

void writeRateLimited(Level level, const std::source_location& site, std::string_view message,
                      RateLimiter::Clock::time_point now) {
  RateLimiter::Decision decision;
  {
    // One limiter per call site; the map grows only with the number of sites in the code.
    static std::mutex mutex;
    static std::map<std::pair<std::string_view, uint_least32_t>, RateLimiter> limiters;
    std::lock_guard lock(mutex);
    auto [it, added] = limiters.try_emplace({site.file_name(), site.line()}, kRateLimitBurst, kRateLimitInterval);
    decision = it->second.admit(now);
  }
  if (!decision.allowed) return;
  if (decision.suppressedBefore > 0)
    write(level, fmt::format("{} similar messages suppressed (more than {} in {} s)", decision.suppressedBefore,
                             kRateLimitBurst, kRateLimitInterval.count()));
  write(level, message);
}

}  // namespace strata::log
