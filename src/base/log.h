// Minimal leveled logging to stderr for host-side diagnostics.
// Guest console output never goes through here; this is for the operator.
// Lines a guest can trigger at will go through warnRateLimited, so a hostile
// guest cannot flood the operator's log (or fill the disk it goes to).
#pragma once

#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <source_location>
#include <string_view>

namespace strata::log {

enum class Level { Debug, Info, Warn, Error };

void setLevel(Level level);
bool enabled(Level level);
void write(Level level, std::string_view message);

template <typename... Args>
void debug(std::string_view format, Args&&... args) {
  if (enabled(Level::Debug)) write(Level::Debug, fmt::format(fmt::runtime(format), std::forward<Args>(args)...));
}
template <typename... Args>
void info(std::string_view format, Args&&... args) {
  if (enabled(Level::Info)) write(Level::Info, fmt::format(fmt::runtime(format), std::forward<Args>(args)...));
}
template <typename... Args>
void warn(std::string_view format, Args&&... args) {
  if (enabled(Level::Warn)) write(Level::Warn, fmt::format(fmt::runtime(format), std::forward<Args>(args)...));
}
template <typename... Args>
void error(std::string_view format, Args&&... args) {
  if (enabled(Level::Error)) write(Level::Error, fmt::format(fmt::runtime(format), std::forward<Args>(args)...));
}

// Lets through at most `burst` events per `interval`; counts the rest.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Decision {
    bool allowed = false;
    uint64_t suppressedBefore = 0;  // events refused since the last allowed one (report them first)
  };
  RateLimiter(unsigned burst, Clock::duration interval) : burst_(burst), interval_(interval) {}
  Decision admit(Clock::time_point now);

 private:
  const unsigned burst_;
  const Clock::duration interval_;
  Clock::time_point windowStart_{};
  bool started_ = false;
  unsigned inWindow_ = 0;
  uint64_t suppressed_ = 0;
};

inline constexpr unsigned kRateLimitBurst = 5;
inline constexpr std::chrono::seconds kRateLimitInterval{10};

// A format string that remembers the call site it was written at: each site
// has its own limiter, so one noisy line does not silence the others.
struct SiteFormat {
  template <typename String>
  SiteFormat(const String& text, std::source_location where = std::source_location::current())
      : format(text), site(where) {}
  std::string_view format;
  std::source_location site;
};

// Writes a warning unless its call site already wrote kRateLimitBurst lines in
// the last kRateLimitInterval; the first line after a quiet period says how
// many were suppressed. Any thread.
void writeRateLimited(Level level, const std::source_location& site, std::string_view message,
                      RateLimiter::Clock::time_point now);
template <typename... Args>
void warnRateLimited(SiteFormat format, Args&&... args) {
  if (!enabled(Level::Warn)) return;
  writeRateLimited(Level::Warn, format.site, fmt::format(fmt::runtime(format.format), std::forward<Args>(args)...),
                   RateLimiter::Clock::now());
}

}  // namespace strata::log
