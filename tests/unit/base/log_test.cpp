// Rate-limited logging: a flood of guest-triggered warnings from one call site
// writes a bounded number of lines, says how many it suppressed, and does not
// silence other call sites.
#include "base/log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace strata::log {
namespace {

using Clock = RateLimiter::Clock;

size_t countLines(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

TEST(RateLimiter, LetsABurstThroughPerInterval) {
  RateLimiter limiter(3, std::chrono::seconds(10));
  Clock::time_point t0{};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.admit(t0 + std::chrono::seconds(1)).allowed);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limiter.admit(t0 + std::chrono::seconds(2)).allowed);
  auto next = limiter.admit(t0 + std::chrono::seconds(12));
  EXPECT_TRUE(next.allowed);
  EXPECT_EQ(next.suppressedBefore, 100u);
  EXPECT_EQ(limiter.admit(t0 + std::chrono::seconds(12)).suppressedBefore, 0u);
}

void floodFromOneSite(int times) {
  for (int i = 0; i < times; ++i) warnRateLimited("guest flood line {}", i);
}

TEST(RateLimitedLog, FloodWritesABoundedNumberOfLines) {
  ::testing::internal::CaptureStderr();
  floodFromOneSite(10000);
  warnRateLimited("another call site still speaks");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(countLines(out, "guest flood line"), kRateLimitBurst);
  EXPECT_NE(out.find("guest flood line 0"), std::string::npos);
  EXPECT_EQ(countLines(out, "another call site still speaks"), 1u);
}

TEST(RateLimitedLog, ReportsSuppressedCountWhenItSpeaksAgain) {
  std::source_location site = std::source_location::current();
  Clock::time_point start = Clock::now();
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 50; ++i) writeRateLimited(Level::Warn, site, "tick", start);
  writeRateLimited(Level::Warn, site, "tick", start + kRateLimitInterval);
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(countLines(out, "tick"), kRateLimitBurst + 1);
  EXPECT_NE(out.find(std::to_string(50 - kRateLimitBurst) + " similar messages suppressed"), std::string::npos) << out;
}

}  // namespace
}  // namespace strata::log
