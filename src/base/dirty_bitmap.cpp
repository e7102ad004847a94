#include "base/dirty_bitmap.h"

namespace strata {

DirtyBitmap::DirtyBitmap(uint64_t bytes)
    : pages_((bytes + (uint64_t{1} << kPageShift) - 1) >> kPageShift),
      words_(std::make_unique<std::atomic<uint64_t>[]>((pages_ + 63) / 64)) {}

void DirtyBitmap::setLogging(bool on) {
  logging_.store(on, std::memory_order_release);
  if (on) return;
  for (uint64_t word = 0; word < (pages_ + 63) / 64; ++word) words_[word].store(0, std::memory_order_relaxed);
}

void DirtyBitmap::takeMarked(std::vector<uint64_t>& pages) {
  for (uint64_t word = 0; word < (pages_ + 63) / 64; ++word) {
    uint64_t bits = words_[word].exchange(0, std::memory_order_acq_rel);
    while (bits != 0) {
      pages.push_back(word * 64 + static_cast<uint64_t>(__builtin_ctzll(bits)));
      bits &= bits - 1;
    }
  }
}

}  // namespace strata
