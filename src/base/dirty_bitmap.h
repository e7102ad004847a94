// DirtyBitmap: one bit per 4 KiB page of guest RAM (or block of a disk), set while logging is on by
// whatever writes the page (the harts' store slow path, device DMA), taken
// round by round by live migration. Lock-free: any thread marks, one takes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace strata {

class DirtyBitmap {
 public:
  static constexpr uint64_t kPageShift = 12;

  explicit DirtyBitmap(uint64_t bytes);

  bool logging() const { return logging_.load(std::memory_order_acquire); }
  // Turning logging off clears every mark.
  void setLogging(bool on);

  // Marks the pages under [offset, offset + length) of RAM, when logging.
  void markRange(uint64_t offset, uint64_t length) {
    if (!logging() || length == 0) return;
    for (uint64_t page = offset >> kPageShift; page <= (offset + length - 1) >> kPageShift && page < pages_; ++page)
      words_[page / 64].fetch_or(uint64_t{1} << (page % 64), std::memory_order_acq_rel);
  }
  // Appends the marked page numbers to `pages` in ascending order and clears them.
  void takeMarked(std::vector<uint64_t>& pages);
  uint64_t pageCount() const { return pages_; }

 private:
  uint64_t pages_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::atomic<bool> logging_{false};
};

}  // namespace strata
