// CodeCache: one fixed executable region per hart that translated blocks are
// bump-allocated from. Bounded: when it is full the engine drops everything
// and starts over (counted), the simplest policy that is always correct.
// The first bytes hold the entry/exit trampolines and survive every reset.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::cpu::jit {

class CodeCache {
 public:
  explicit CodeCache(size_t capacity);
  ~CodeCache();
  CodeCache(const CodeCache&) = delete;
  CodeCache& operator=(const CodeCache&) = delete;

  uint8_t* cursor() const { return base_ + used_; }
  size_t remaining() const { return capacity_ - used_; }
  size_t used() const { return used_; }
  bool holdsTranslations() const { return used_ > pinned_; }
  // Keeps `bytes` just written at cursor() (16-byte aligned for the next one).
  void commit(size_t bytes);
  // Marks everything written so far as permanent (the trampolines).
  void pinPrefix() { pinned_ = used_; }
  // Moves the cursor to the next page boundary (translations made from now on
  // share no page with the earlier ones).
  void startFreshPage();
  // Drops every translation (everything after the pinned prefix).
  void reset() { used_ = pinned_; }

 private:
  uint8_t* base_;
  size_t capacity_;
  size_t used_ = 0;
  size_t pinned_ = 0;
};

}  // namespace strata::cpu::jit
