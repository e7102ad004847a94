// Minimal leveled logging to stderr for host-side diagnostics.
// Guest console output never goes through here; this is for the operator.
#pragma once

#include <fmt/core.h>
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

}  // namespace strata::log
