// RISC-V M-extension division and remainder, with the architecture's answers
// for division by zero and signed overflow (no trap). One definition serves
// the interpreter's handlers and the translator's out-of-line helper.
#pragma once

#include <cstdint>

namespace strata::cpu {

inline uint64_t sext32(uint32_t v) { return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))); }

inline uint64_t divSigned(uint64_t x, uint64_t y) {
  const auto a = static_cast<int64_t>(x), b = static_cast<int64_t>(y);
  return b == 0 ? ~0ull : (a == INT64_MIN && b == -1) ? x : static_cast<uint64_t>(a / b);
}
inline uint64_t divUnsigned(uint64_t a, uint64_t b) { return b == 0 ? ~0ull : a / b; }
inline uint64_t remSigned(uint64_t x, uint64_t y) {
  const auto a = static_cast<int64_t>(x), b = static_cast<int64_t>(y);
  return b == 0 ? x : (a == INT64_MIN && b == -1) ? 0 : static_cast<uint64_t>(a % b);
}
inline uint64_t remUnsigned(uint64_t a, uint64_t b) { return b == 0 ? a : a % b; }
inline uint64_t divSignedWord(uint64_t x, uint64_t y) {
  const auto a = static_cast<int32_t>(x), b = static_cast<int32_t>(y);
  return b == 0 ? ~0ull : (a == INT32_MIN && b == -1) ? sext32(static_cast<uint32_t>(a)) : sext32(static_cast<uint32_t>(a / b));
}
inline uint64_t divUnsignedWord(uint64_t x, uint64_t y) {
  const auto a = static_cast<uint32_t>(x), b = static_cast<uint32_t>(y);
  return b == 0 ? ~0ull : sext32(a / b);
}
inline uint64_t remSignedWord(uint64_t x, uint64_t y) {
  const auto a = static_cast<int32_t>(x), b = static_cast<int32_t>(y);
  return b == 0 ? sext32(static_cast<uint32_t>(a)) : (a == INT32_MIN && b == -1) ? 0 : sext32(static_cast<uint32_t>(a % b));
}
inline uint64_t remUnsignedWord(uint64_t x, uint64_t y) {
  const auto a = static_cast<uint32_t>(x), b = static_cast<uint32_t>(y);
  return b == 0 ? sext32(a) : sext32(a % b);
}
inline uint64_t mulhsu(uint64_t a, uint64_t b) {
  return static_cast<uint64_t>((static_cast<__int128>(static_cast<int64_t>(a)) * static_cast<__int128>(b)) >> 64);
}

}  // namespace strata::cpu
